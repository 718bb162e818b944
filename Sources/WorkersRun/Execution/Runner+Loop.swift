#if canImport(Glibc)
import Glibc
#endif
import CWorkersShims
import DequeModule
import WorkersCore

/// The one poll loop: exits, output, signals, deadlines; the terminate sequence; `--round-robin`
/// feeding.
extension Runner {
    /// Waits in `poll` for an exit, output (`--line-buffer`), a signal, a deadline or the next
    /// `--delay` start, and handles what came. Returns `false` when `poll` itself fails.
    func waitAndHandle() -> Bool {
        let now = monotonicSeconds()
        var wake = scheduler.nextWake(now: now, running: state.running.count, wantsStart: state.inputLeft) ?? .infinity
        if let links = linksWake() { wake = min(wake, links) }
        if let throttle = throttleWait(runningCount: state.running.count, halting: scheduler.stopping, inputLeft: state.inputLeft) {
            wake = min(wake, now + throttle)
        }
        let timeout: Int32 = wake.isFinite ? Int32(max(0, min(60_000, ((wake - now) * 1000).rounded(.up)))) : -1
        // The pidfds, then the signal pipe, then (--line-buffer) each job's stdout and stderr.
        // (poll skips an entry whose descriptor is negative: one that has ended.)
        var descriptors = state.running.map { pollfd(fd: $0.pidfd?.raw ?? -1, events: Int16(POLLIN), revents: 0) }
        descriptors.append(pollfd(fd: signalPipe?.read.raw ?? -1, events: Int16(POLLIN), revents: 0))
        if lineBuffer {
            for job in state.running {
                descriptors.append(pollfd(fd: job.stdout?.raw ?? -1, events: Int16(POLLIN), revents: 0))
                descriptors.append(pollfd(fd: job.stderr?.raw ?? -1, events: Int16(POLLIN), revents: 0))
            }
        }
        // --pipe, --round-robin: the stdin pipes that still have part of a block to take.
        let feedBase = descriptors.count
        let feeding = state.running.indices.filter { state.running[$0].feed != nil && (!state.running[$0].feedPending.isEmpty || state.running[$0].feedFile != nil) }
        for index in feeding { descriptors.append(pollfd(fd: state.running[index].feed!.raw, events: Int16(POLLOUT), revents: 0)) }
        // A stdout pipe whose reader is gone (`… | head -1`) reports POLLERR: the run ends as
        // GNU's and xargs' do, by SIGPIPE, rather than running every job for no reader.
        let stdoutIndex = watchStdout && scheduler.caughtSignal == nil ? descriptors.count : nil
        if stdoutIndex != nil { descriptors.append(pollfd(fd: STDOUT_FILENO, events: 0, revents: 0)) }
        // The input's next line, when a slot waits for it (it wakes the loop; startJobs reads).
        if let input = state.inputToWaitFor { descriptors.append(pollfd(fd: input, events: Int16(POLLIN), revents: 0)) }
        state.inputToWaitFor = nil
        // The hosts' links (-S): output, exits and room to write.
        let linkBase = descriptors.count
        descriptors += linkDescriptors()
        let ready = poll(&descriptors, nfds_t(descriptors.count), timeout)
        if let stdoutIndex, descriptors[stdoutIndex].revents & Int16(POLLERR | POLLHUP) != 0 {
            perform(scheduler.received(signal: SIGPIPE, now: monotonicSeconds()))
        }
        if ready < 0, errno != EINTR { return false }
        for (slot, index) in feeding.enumerated() where descriptors[feedBase + slot].revents != 0 { writeFeed(index) }
        let jobs = state.running.count
        if lineBuffer {
            for index in 0..<jobs {
                if descriptors[jobs + 1 + 2 * index].revents != 0 { relay(&state.running[index], stdout: true) }
                if descriptors[jobs + 1 + 2 * index + 1].revents != 0 { relay(&state.running[index], stdout: false) }
            }
        }
        if descriptors[jobs].revents != 0, let signalPipe {
            var byte: UInt8 = 0
            if read(signalPipe.read.raw, &byte, 1) == 1 {
                let hungUp = scheduler.hangup
                perform(scheduler.received(signal: Int32(byte), now: monotonicSeconds()))
                if scheduler.hangup, !hungUp {
                    // As GNU: no new jobs; the running ones finish (SIGTERM stops them).
                    output.writeError("\(programName): SIGHUP received. No new jobs will be started.\n"
                        + "\(programName): Waiting for these \(state.running.count) jobs to finish. Send SIGTERM to stop now.\n"
                        + state.running.map { "\(programName): \($0.command)\n" }.joined())
                }
            }
        }
        // Reap in the order the jobs started (found by pid: each reaped job leaves the array).
        let exited = (0..<jobs).filter { descriptors[$0].revents != 0 }.map { state.running[$0].pid }
        for pid in exited {
            guard let index = state.running.firstIndex(where: { $0.pid == pid }) else { continue }
            var status: Int32 = 0
            guard waitpid(pid, &status, WNOHANG) == pid else { continue }
            if lineBuffer {
                relay(&state.running[index], stdout: true, final: true)
                relay(&state.running[index], stdout: false, final: true)
            }
            // Its pidfd and stdin pipe close as the record goes.
            let job = state.running.remove(at: index)
            // A block it never began to take goes to another job.
            if job.feed != nil, options.roundRobin, job.feedOffset == 0, !job.feedPending.isEmpty { state.roundRobinQueue.prepend(job.feedPending) }
            let (exit, signal) = WaitStatus(raw: status).exitAndSignal
            finish(job, exit: exit, signal: signal)
        }
        if linkBase < descriptors.count {
            handleLinks(descriptors[linkBase...])
            tendLinks()
        }
        perform(scheduler.advance(now: monotonicSeconds()))
        return true
    }

    /// Sends the signals the scheduler decided on (time-outs, the terminate sequence: GNU's
    /// TERM,200,TERM,100,TERM,50,KILL,25 ms by default) to the jobs' process groups.
    func perform(_ kills: [RunScheduler.Kill]) {
        for kill in kills {
            guard let job = state.running.first(where: { $0.job.sequence == kill.sequence }) else { continue }
            if kill.timedOut {
                output.writeError("\(programName): Warning: This job was killed because it timed out:\n\(programName): Warning: \(job.command)\n")
            }
            signal(job, kill.signal)
        }
    }

    /// `--round-robin`: gives each block to a running job whose stdin has taken all it was given
    /// (taking turns), starting jobs up to `-j` while blocks wait; when the input is done, closes
    /// the jobs' stdin so they finish. One block waits at most: memory stays at a block per job.
    func feedRoundRobin() {
        while !scheduler.stopping {
            let count = state.running.count
            let free = (0..<count).map { (state.roundRobinCursor + $0) % count }
                .first { state.running[$0].feed != nil && state.running[$0].feedPending.isEmpty }
            // Read the next block only when a job can take it: a slow input never holds up a
            // job's half-written block.
            guard free != nil || count < slots else { break }
            if state.roundRobinQueue.isEmpty, !state.inputDone, case .blocks(let blocks) = source {
                if let block = blocks.next() { state.roundRobinQueue.append(block) } else { state.inputDone = true }
            }
            guard let block = state.roundRobinQueue.first else { break }
            // Each block starts a job until -j run (as GNU), then goes to one with room.
            var target = free
            if count < slots {
                guard case .now(let slot) = scheduler.mayStart(now: monotonicSeconds(), running: count) else { break }
                let sequence = state.nextSequence
                state.nextSequence += 1
                // Its input is a stream: a failed job is not run again.
                launch(Pending(sequence: sequence, arguments: [], attempt: max(1, options.retries)), slot: slot, roundRobin: true)
                guard state.running.count > count else { state.roundRobinQueue.removeAll(); state.inputDone = true; return }
                target = count
            }
            guard let index = target else { break }
            state.roundRobinQueue.removeFirst()
            state.roundRobinCursor = index + 1
            state.running[index].feedPending = block
            state.running[index].feedOffset = 0
            writeFeed(index)
        }
        if state.inputDone, state.roundRobinQueue.isEmpty {
            for index in state.running.indices where state.running[index].feedPending.isEmpty {
                state.running[index].feed = nil  // the end of its input
            }
        }
    }

    /// Writes what the pipe takes of a job's pending block (non-blocking); a job that closed its
    /// stdin loses the rest, as it would with GNU's.
    func writeFeed(_ index: Int) {
        while let fd = state.running[index].feed?.raw, state.running[index].feedOffset < state.running[index].feedPending.count {
            let offset = state.running[index].feedOffset
            let written = state.running[index].feedPending.withUnsafeBytes { bytes in retryingInterrupts { Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset) } }
            if written > 0 {
                state.running[index].feedOffset += written
                state.running[index].fed += written
                continue
            }
            if written < 0, errno == EAGAIN || errno == EWOULDBLOCK { return }
            state.running[index].feed = nil
        }
        state.running[index].feedPending = []
        state.running[index].feedOffset = 0
        // --pipe-part: the part goes from the file to the pipe in the kernel.
        while let fd = state.running[index].feed?.raw, let file = state.running[index].feedFile {
            var offset = off_t(file.offset)
            let sent = retryingInterrupts { sendfile(fd, file.fd, &offset, min(file.end - file.offset, 1 << 20)) }
            if sent > 0 {
                state.running[index].feedFile?.offset += sent
                if file.offset + sent >= file.end { state.running[index].feedFile = nil }
                continue
            }
            if sent < 0, errno == EAGAIN || errno == EWOULDBLOCK { return }
            state.running[index].feedFile = nil
        }
        // --pipe, --pipe-part: the job's stdin ends with its block.
        if state.running[index].job.pipedBlock != nil || state.running[index].job.part != nil { state.running[index].feed = nil }
    }
}
