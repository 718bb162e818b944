#if canImport(Glibc)
import Glibc
#endif
import CWorkersShims
import DequeModule
import WorkersCore

/// Starting jobs: what to start next, when (`--delay`, `--load`, `--memfree`), in which slot,
/// and the inputs grouped for `-X`/`-m`.
extension Runner {
    /// Starts jobs while there are free slots, work left and no reason to stop or hold back.
    func startJobs() {
        if options.roundRobin { return feedRoundRobin() }
        while case .now(let slot) = scheduler.mayStart(now: monotonicSeconds(), running: state.running.count) {
            // As GNU: even with no job running (the load or the memory may be another program's).
            if options.maximumLoad != nil || options.maximumLoadFile != nil || options.minimumFreeMemory != nil, throttled() { break }
            guard let job = state.retries.popFirst() ?? nextPending() else { break }
            var host: Int?
            if !hosts.isEmpty, !options.dryRun {
                if let pinned = job.pinnedHost, !hosts[pinned].usable {
                    // --onall, --nonall: its host is gone.
                    output.writeError("\(programName): \(hosts[pinned].login.login) is lost: job \(job.sequence) does not run\n")
                    notStarted(job, failed: true)
                    continue
                }
                // No room where it may run yet: it waits for a job there to end.
                guard let chosen = chooseHost(for: job) else { state.retries.prepend(job); break }
                host = chosen
            }
            launch(job, slot: slot, host: host, roundRobin: tee != nil)
        }
        if tee != nil { feedTee() }
    }

    /// `--tee`: once every job has started and taken the last chunk, the next chunk goes to all
    /// of them; at the end of the data their stdin closes. A job that stops reading (`head`)
    /// drops out when its pipe breaks.
    func feedTee() {
        guard let tee, state.preloaded?.isEmpty ?? true, state.retries.isEmpty else { return }
        // Chunk after chunk while every pipe takes them at once; the loop waits for the rest.
        while state.running.allSatisfy({ $0.feed == nil || $0.feedPending.isEmpty }) {
            guard let chunk = tee.nextChunk() else {
                if tee.ended {
                    for index in state.running.indices { state.running[index].feed = nil }
                } else {
                    state.inputToWaitFor = tee.fd
                }
                return
            }
            for index in state.running.indices where state.running[index].feed != nil {
                state.running[index].feedPending = chunk
                state.running[index].feedOffset = 0
                writeFeed(index)
            }
        }
    }

    /// The next job from the input (skipping what `--resume` says is done), with its `--pipe`
    /// block ready; `nil` when the input is done.
    func nextPending() -> Pending? {
        while !state.inputDone {
            var arguments: [String] = []
            var block: [UInt8]?
            var part: (offset: Int, length: Int)?
            switch source {
            case .failed(var commands):
                guard let next = commands.popFirst() else { state.inputDone = true; return nil }
                source = .failed(commands)
                // -k: the sequence numbers between failed jobs are not run again; they take their turn empty.
                for gap in state.nextSequence..<max(state.nextSequence, next.sequence) { passOver(gap) }
                state.nextSequence = next.sequence + 1
                return Pending(sequence: next.sequence, arguments: [], attempt: 1, command: next.command)
            case .parts(let parts):
                part = parts.next()
                if part == nil { state.inputDone = true; return nil }
            case .blocks(let blocks):
                block = blocks.next()
                if block == nil { state.inputDone = true; return nil }
                // (-r: the blank lines were taken out of the input before it was cut, as GNU does.)
            case .arguments(let inputs) where options.onAll || options.nonAll:
                return nextOnEveryHost(inputs)
            case .arguments(let inputs):
                // A slow writer: wait for its next line beside the running jobs, not in a read.
                if state.preloaded == nil, !state.running.isEmpty, let fd = inputs.descriptorToWaitFor() {
                    state.inputToWaitFor = fd
                    return nil
                }
                let values = state.preloaded != nil ? state.preloaded?.popFirst() : inputs.next()
                guard let values else { state.inputDone = true; return nil }
                arguments = values
            }
            let sequence = state.nextSequence
            state.nextSequence += 1
            if skip.contains(sequence) || (options.resume && results?.hasResult(sequence: sequence, arguments: arguments) == true) {
                passOver(sequence)
                continue
            }
            var pending = Pending(sequence: sequence, arguments: arguments, attempt: 1)
            guard !options.dryRun else { return pending }
            if options.catBlocks, block != nil || part != nil {
                // --cat: the block goes to a named file, {} is its name, stdin stays /dev/null.
                guard let (fd, path) = namedTemporaryFile(in: options.temporaryDirectory, suffix: "") else {
                    output.writeError("\(programName): --cat: cannot create a temporary file: \(String(cString: strerror(errno)))\n")
                    state.inputDone = true
                    return nil
                }
                pending.block = fd
                pending.catPath = path
                pending.arguments = [path]
                if let block {
                    pending.blockBytes = block.count
                    writeFully(fd.raw, block)
                } else if let part, case .parts(let parts) = source {
                    pending.blockBytes = part.length
                    _ = copyFileRange(from: parts.fd, offset: part.offset, length: part.length, to: fd.raw)
                }
                return pending
            }
            if let block { pending.pipedBlock = block }
            if let part {
                pending.part = (part.offset, part.length)
                pending.blockBytes = part.length
            }
            return pending
        }
        return nil
    }

    /// `--onall`: every input on every usable host; `--nonall`: the command once on each, with
    /// no input. The sequence numbers go host by host (so `-k` prints a host's jobs together, in
    /// input order, as GNU's does); the jobs start input by input, so every host is busy at once.
    /// As GNU's, `--tag` is the host, and the joblog counts each host's jobs from 1.
    func nextOnEveryHost(_ inputs: JobInputs) -> Pending? {
        if !state.everyHostIssued {
            state.everyHostIssued = true
            var all: [[String]] = []
            if options.nonAll {
                all = [[]]
            } else if let preloaded = state.preloaded {
                all = Array(preloaded)
                state.preloaded = []
            } else {
                while let values = inputs.next() { all.append(values) }
            }
            let targets = hosts.indices.filter { hosts[$0].usable }
            let first = state.nextSequence
            for (index, values) in all.enumerated() {
                for (ordinal, host) in targets.enumerated() {
                    var pending = Pending(sequence: first + ordinal * all.count + index, arguments: values, attempt: 1)
                    pending.pinnedHost = host
                    pending.hostSequence = index + 1
                    state.everyHostQueue.append(pending)
                }
            }
            state.nextSequence = first + all.count * targets.count
            state.total = all.count * targets.count
        }
        while let pending = state.everyHostQueue.popFirst() {
            if skip.contains(pending.sequence) {
                passOver(pending.sequence)
                continue
            }
            return pending
        }
        state.inputDone = true
        return nil
    }

    /// `-k`: a job that prints nothing (skipped, or never started) still takes its turn.
    func passOver(_ sequence: Int) {
        guard options.keepOrder else { return }
        state.inOrder.hold(Finished(sequence: sequence, tag: nil, stdout: nil, stderr: nil, skipped: true))
        flushInOrder(releasing: sequence)
    }

    /// Spawns `job` in `slot` (or prints it, `--dry-run`). Its stdin is a pipe we write to for
    /// `--pipe` (its block) and `--round-robin` (the blocks it is handed while it runs).
    func launch(_ job: Pending, slot: Int, host: Int? = nil, roundRobin: Bool = false) {
        let feedsStdin = roundRobin || job.pipedBlock != nil || job.part != nil
        let filled = CommandBuilder.Job(arguments: job.arguments, sequence: job.sequence, slot: slot)
        if options.shellQuoteOnly {
            output.write(shellQuote(job.arguments.joined(separator: " ")) + "\n")
            return
        }
        let command = job.command ?? builder.commandLine(for: filled)
        if options.maxLineLengthGiven, command.utf8.count >= options.maxLineLength {
            // GNU: an error, and the run starts nothing more.
            let input = job.arguments.first ?? ""
            let shown = input.count > 50 ? String(input.prefix(50)) + "..." : input
            output.writeError("\(programName): Error: Command line too long (\(command.utf8.count) >= \(options.maxLineLength)) at input 0: \(shown)\n")
            scheduler.stopWithError()
            notStarted(job, failed: false)
            return
        }
        // --filter: every expression, filled in unquoted, must be true (not under --dry-run, as
        // GNU 20221122).
        if let perl = builder.perl, !options.filters.isEmpty, !options.dryRun,
           !options.filters.allSatisfy({ perl.isTrue(builder.substitute($0, job: filled) { $0 }) }) {
            skipByExpression(job, command: command)
            return
        }
        if let perl = builder.perl, perl.takeSkip(job.sequence) {
            skipByExpression(job, command: command)
            return
        }
        if options.dryRun {
            output.write(command + "\n")
            return
        }
        if options.printCommands { output.writeError(command + "\n") }
        var directory: String?
        let remoteHost = host.flatMap { hosts[$0].local ? nil : $0 }
        if remoteHost != nil {
            // Its directory is made on its host.
        } else if let template = options.workingDirectory {
            var path = builder.substitute(template, job: filled) { $0 }
            // GNU makes the directory if it is missing; a relative one is from where we started.
            _ = makeDirectories(path)
            if path == "." { path = startDirectory } else if !path.hasPrefix("/") { path = startDirectory + "/" + path }
            // One that cannot be made or entered: GNU's error, and the job does not run.
            guard path.withEscapedCString({ access($0, X_OK) }) == 0 else {
                output.writeError("\(programName): Error: Cannot change into non-executable dir \(path): \(String(cString: strerror(errno)))\n")
                notStarted(job, failed: true, listed: command)
                return
            }
            directory = path
        } else if options.uniqueWorkingDirectory {
            // GNU's `--workdir ...`: ~/.parallel/tmp/HOST-PID-SEQ, removed when the job ends.
            let home = environmentValue("HOME") ?? "/tmp"
            let path = "\(home)/.parallel/tmp/\(hostName)-\(getpid())-\(job.sequence)"
            if let failure = makeDirectories(path) { output.writeError("\(programName): --workdir: \(failure)\n") }
            directory = path
        }
        // --line-buffer -k: a job that is not first in order holds its lines until it is.
        let held = lineBuffer && options.keepOrder && job.sequence != scheduler.nextToPrint
        if let block = job.block { lseek(block.raw, 0, SEEK_SET) }
        // The job's stdin pipe: the child's end closes when this returns; ours goes to its record.
        var feed: (read: OwnedDescriptor, write: OwnedDescriptor)?
        if feedsStdin {
            guard let pipe = ownedPipe() else {
                output.writeError("\(programName): pipe: \(String(cString: strerror(errno)))\n")
                return
            }
            _ = fcntl(pipe.write.raw, F_SETFL, O_NONBLOCK)
            // Room for a whole block where the system allows it: one write instead of sixteen.
            if let bytes = job.pipedBlock?.count ?? job.part?.length ?? (tee != nil ? 1 << 20 : nil) { _ = fcntl(pipe.write.raw, linuxSetPipeSize, Int32(min(max(bytes, 4096), 1 << 20))) }
            feed = pipe
        }
        let stdin = feed?.read.raw ?? (job.catPath == nil ? job.block?.raw : nil) ?? terminal?.raw ?? devNull?.raw ?? -1
        // -v: the command line comes first in the job's output (grouped: in its buffer, before
        // the job can write; --line-buffer: printed or held just after the spawn, before any relay).
        let preamble = options.verbose && !lineBuffer ? command + "\n" : nil
        let spawned = remoteHost.map { spawnRemote(filled, pending: job, host: $0, command: command, preamble: preamble) }
            ?? spawn(filled, command: command, stdin: stdin, directory: directory, preamble: preamble)
        switch spawned {
        case .success(let spawned):
            let now = monotonicSeconds()
            scheduler.started(sequence: job.sequence, slot: slot, attempt: job.attempt, now: now)
            var started = Running(job: job, command: command, slot: slot, pid: spawned.pid, pidfd: spawned.pidfd, host: host, remote: spawned.remote,
                                  startEpoch: epochSeconds(), startMonotonic: now, stdout: spawned.stdout, stderr: spawned.stderr,
                                  tag: job.pinnedHost != nil && options.tag && options.tagString == nil
                                      ? hosts[job.pinnedHost!].login.login : tag(job.sequence, job.arguments, slot: slot))
            if let host { hosts[host].running += 1 }
            if held {
                started.heldOut = spareBuffers.popLast() ?? bufferFile()
                started.heldErr = spareBuffers.popLast() ?? bufferFile()
            }
            started.feed = feed?.write
            if options.uniqueWorkingDirectory { started.removeDirectory = directory }
            if let block = job.pipedBlock { started.feedPending = block }
            if let part = job.part, case .parts(let parts) = source { started.feedFile = (parts.fd, part.offset, part.offset + part.length) }
            if options.verbose, lineBuffer {
                output.writeLines((command + "\n").escapedBytes[...], to: held ? started.heldOut?.raw ?? STDOUT_FILENO : STDOUT_FILENO, tag: held ? nil : started.tag)
            }
            state.running.append(started)
            if job.pipedBlock != nil || job.part != nil { writeFeed(state.running.count - 1) }
        case .outOfDescriptors where !state.running.isEmpty && tee != nil:
            // Every --tee job must run at once. GNU stops, killing the jobs it started and
            // printing nothing of theirs.
            warnOfDescriptorLimit()
            output.writeError("\(programName): Error: --tee requires --jobs to be higher. Try --jobs 0.\n")
            scheduler.stopWithError()
            state.discardsOutput = true
            perform(scheduler.terminateAll(now: monotonicSeconds()))
        case .outOfDescriptors where !state.running.isEmpty:
            // As GNU: fewer jobs at once, none failed. The job starts when one ends.
            state.retries.prepend(job)
            warnOfDescriptorLimit()
            scheduler.limitSlots(to: state.running.count)
        case .failure(let message), .outOfDescriptors(let message):
            output.writeError("\(programName): \(message)\n")
            notStarted(job, failed: true, listed: command)
        }
    }

    /// The descriptor limit was met (with this many jobs running): GNU's warning, once.
    private func warnOfDescriptorLimit() {
        guard !state.warnedDescriptors else { return }
        state.warnedDescriptors = true
        // GNU's words, line for line.
        let count = state.running.count
        output.writeError(["Only enough file handles to run \(count) jobs in parallel.",
                           "Try running '\(programName) -j0 -N \(count) --pipe \(programName) -j0'",
                           "or increasing 'ulimit -n' (try: ulimit -n `ulimit -Hn`)",
                           "or increasing 'nofile' in /etc/security/limits.conf",
                           "or increasing /proc/sys/fs/file-max"].map { "\(programName): Warning: \($0)\n" }.joined())
    }

    /// A job whose `{= … =}` called `skip()`: as GNU, it does not run, its joblog row says exit
    /// -2, and it counts as failed.
    func skipByExpression(_ job: Pending, command: String) {
        if !options.dryRun {
            joblog?.write(sequence: job.sequence, start: epochSeconds(), runtime: 0, sent: 0, received: 0, exit: -2, signal: 0, command: command)
        }
        notStarted(job, failed: !options.dryRun)
    }

    /// A job that will not run: its `--cat` file goes, it counts as failed when `failed` (and is
    /// listed in the failure summary as a 127 when `listed` gives its command), and under -k the
    /// next job's output is not held for it.
    func notStarted(_ job: Pending, failed: Bool, listed command: String? = nil) {
        if let path = job.catPath { unlink(path) }
        if failed { scheduler.couldNotStart(attempt: job.attempt) }
        if let command, state.failures.count < 10 { state.failures.append((job.sequence, 127, 0, command)) }
        passOver(job.sequence)
    }

    /// How long to wait before starting another job under `--load` or `--memfree` (re-checked
    /// every second), or `nil` when nothing holds a start back.
    func throttleWait(runningCount: Int, halting: Bool, inputLeft: Bool) -> Double? {
        guard runningCount < slots, !halting, inputLeft, options.maximumLoad != nil || options.maximumLoadFile != nil || options.minimumFreeMemory != nil else { return nil }
        return throttled() ? 1.0 : nil
    }

    /// Whether `--load` or `--memfree` holds back the next start now.
    func throttled() -> Bool {
        let fromFile = options.maximumLoadFile.flatMap(readTextFile).flatMap(RunOptions.parseLoad)
        if let maximum = options.maximumLoad ?? fromFile, let text = readTextFile("/proc/loadavg"),
           let load = text.split(separator: " ").first.flatMap({ Double($0) }), load > maximum {
            return true
        }
        if let minimum = options.minimumFreeMemory, let text = readTextFile("/proc/meminfo"),
           let line = text.split(separator: "\n").first(where: { $0.hasPrefix("MemAvailable:") }),
           let kilobytes = line.split(separator: " ").dropFirst().first.flatMap({ Int($0) }), kilobytes * 1024 < minimum {
            return true
        }
        return false
    }

    /// `-X`/`-m`: the inputs in groups, one group a job — spread evenly over the job slots, and no
    /// group longer than fits on one command line (`-s`).
    func groupForMultiple(_ inputs: [[String]]) -> [[String]] {
        let values = inputs.flatMap { $0 }
        guard !values.isEmpty else { return [] }
        let groups = min(slots, values.count)
        var perGroup = (values.count + groups - 1) / groups
        // -n N: at most N inputs a job, as GNU.
        if let most = options.argumentsPerJob, most > 0 { perGroup = min(perGroup, most) }
        // A line grows by what one more input adds to it: under -X, each word around {} again.
        // GNU keeps a line and its NUL within -s (the default keeps a 4 KiB margin below what
        // the system allows one argument).
        func length(_ arguments: [String]) -> Int {
            builder.commandLine(for: CommandBuilder.Job(arguments: arguments, sequence: 1, slot: 1)).utf8.count
        }
        // What one more input costs is what it costs a one-input line, plus the words repeated
        // around it (-X) or the separating space (-m): the latter is the same for every input.
        let empty = length([""])
        let overhead = length(["", ""]) - empty
        var result: [[String]] = []
        var current: [String] = []
        var currentLength = 0
        for value in values {
            let single = length([value])
            let added = overhead + single - empty
            if !current.isEmpty, current.count >= perGroup || currentLength + added + 1 > options.maxLineLength {
                result.append(current)
                current = []
            }
            currentLength = current.isEmpty ? single : currentLength + added
            current.append(value)
        }
        if !current.isEmpty { result.append(current) }
        return result
    }


    /// `--tag`: the inputs, or `--tagstring` filled in; `nil` without `--tag`.
    func tag(_ sequence: Int, _ arguments: [String], slot: Int) -> String? {
        guard options.tag else { return nil }
        if let tagString = options.tagString {
            return builder.fillText(tagString, job: CommandBuilder.Job(arguments: arguments, sequence: sequence, slot: slot))
        }
        return arguments.joined(separator: " ")
    }
}
