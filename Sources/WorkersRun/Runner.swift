#if canImport(Glibc)
import Glibc
#endif
import CWorkersShims
import DequeModule

import WorkersCore

/// Runs the jobs: spawns each with posix_spawn in a process group of its own, waits on pidfds with
/// `poll` (no sleeping, no polling loop), buffers each job's output in memory files and prints it
/// whole (`--group`), keeps the joblog, and applies `--halt`, `--timeout` and `--retries`.
///
/// One thread does everything: `run()` starts what it may, waits in `poll` for an exit, a line
/// of output (`--line-buffer`), a signal or a deadline, and handles what happened, until no
/// input, retry or job is left. What one run knows lives in ``State``.
public final class Runner {
    let options: RunOptions
    let builder: CommandBuilder
    private(set) var slots: Int
    let shell: String?
    /// Where the jobs come from: input lines, or `--pipe` blocks, or `--pipe-part` ranges.
    private enum Source {
        case arguments(JobInputs)
        case blocks(PipeBlocks)
        case parts(PipeParts)
        /// `--retry-failed`: the joblog's failed jobs, their sequence numbers and commands.
        case failed(Deque<(sequence: Int, command: String)>)
    }
    private var source: Source
    /// The environment's strings, copied once for every spawn (strdup'd, freed in deinit).
    private let environment: [UnsafeMutablePointer<CChar>?]
    private let output: OutputWriter
    private var joblog: Int32 = -1
    private var skip: Set<Int> = []
    private let devNull: Int32
    /// `--tty`: the terminal, the jobs' stdin.
    private let terminal: Int32
    private var signalPipe: [Int32] = [-1, -1]
    /// `--results`: where outputs are saved instead of printed.
    private let results: ResultsWriter?
    /// `--line-buffer` and `-u` as they apply: `--results` saves whole outputs instead.
    private let lineBuffer: Bool
    private let ungroup: Bool
    /// Whether stdout is a pipe or socket, watched for its reader going away.
    private var watchStdout = false

    private struct Pending {
        var sequence: Int
        var arguments: [String]
        var attempt: Int
        /// `--retry-failed`: the command as the joblog has it (no template to fill).
        var command: String?
        /// `--cat`: the block's file, which is `{}`, removed when the job is done.
        var catPath: String?
        /// `--pipe`: an unlinked file holding the job's block, its stdin.
        var block: Int32 = -1
        var blockBytes = 0
    }

    private struct Running {
        var job: Pending
        var command: String
        var slot: Int
        var pid: pid_t
        var pidfd: Int32
        var startEpoch: Double
        var startMonotonic: Double
        var stdout: Int32
        var stderr: Int32
        var deadline: Double?
        /// `--tag`/`--tagstring`: the prefix of each of its output lines, worked out once.
        var tag: String?
        /// `--line-buffer`: what came after the last newline on stdout and stderr.
        var partialOut: [UInt8] = []
        var partialErr: [UInt8] = []
        /// `--line-buffer -k`: the whole lines of a job that is not yet first in order, held in
        /// buffers until it is (then they are printed and the rest comes live).
        var heldOut: Int32 = -1
        var heldErr: Int32 = -1
        /// `--line-buffer`: the bytes of stdout read so far, for the joblog.
        var relayedOut = 0
        /// `--round-robin`: the write end of the job's stdin, the block it is being given and how
        /// much of it went in, and the bytes sent in all.
        var feed: Int32 = -1
        var feedPending: [UInt8] = []
        var feedOffset = 0
        var fed = 0
        /// When the next signal of the terminate sequence is due, and which step it is.
        var nextSignalAt: Double?
        var terminateStep = 0
        var timedOut = false
    }

    private struct Finished {
        var sequence: Int
        /// `--tag`: the prefix of its output lines.
        var tag: String?
        var stdout: Int32
        var stderr: Int32
        var skipped = false
        /// What `--results` records of the job.
        var record: ResultsWriter.Record?
    }

    /// Everything one run knows, in one place.
    private struct State {
        var summary = Summary()
        /// Failed jobs with attempts left, started before new input.
        var retries: Deque<Pending> = []
        var running: [Running] = []
        var usedSlots = Set<Int>()
        var nextSequence = 1
        var inputDone = false
        /// `--halt` reached (or `--results` could not write): how the run stops and its status.
        var halting: (when: RunOptions.Halt.When, status: Int32)?
        /// SIGINT, SIGTERM or SIGHUP, once caught.
        var caughtSignal: Int32?
        /// Whether the descriptor limit was met and said so.
        var warnedDescriptors = false
        var lastStart = -Double.infinity
        /// `-k`: the next sequence number to print, and the finished jobs waiting for it.
        var nextToPrint = 1
        var waiting: [Int: Finished] = [:]
        /// Run times of the jobs that succeeded, for `--timeout N%`.
        var runtimes: [Double] = []
        /// `--bar`, `-X`/`-m` and `--halt …%` read all input first; `total` counts it.
        var preloaded: Deque<[String]>?
        var total: Int?
        var runStart = 0.0

        /// `--round-robin`: a block read but not yet given to a job, and where the next search for
        /// a job with room starts.
        var roundRobinQueue: Deque<[UInt8]> = []
        var roundRobinCursor = 0

        var stopping: Bool { halting != nil || caughtSignal != nil || hangup }
        /// SIGHUP came: no new jobs, the running ones finish.
        var hangup = false
        var inputLeft: Bool { !(inputDone && retries.isEmpty && roundRobinQueue.isEmpty) }
    }
    private var state = State()

    /// What a run came to.
    public struct Summary: Sendable {
        /// Jobs started (retries not counted).
        public var started = 0
        /// Jobs that ended with status 0.
        public var succeeded = 0
        /// Jobs that failed after their last attempt.
        public var failed = 0
        /// GNU parallel's exit status for the run.
        public var exitStatus: Int32 = 0
        /// Whether the run ended because stdout's reader went away: the caller then dies of
        /// SIGPIPE, as GNU parallel does.
        public var stdoutClosed = false
        /// The first ten failures, for the summary.
        public var failures: [(sequence: Int, exit: Int32, signal: Int32, command: String)] = []
    }

    /// A runner for `options` on a machine with `cpus` CPUs; opens the joblog and the inputs.
    ///
    /// - Throws: ``RunUsageError`` for an input file or joblog that cannot be opened.
    public init(options: RunOptions, cpus: Int) throws(RunUsageError) {
        self.options = options
        if options.retryFailed, let path = options.joblog {
            guard !options.noShell else { throw RunUsageError("option --retry-failed runs the joblog's commands with a shell; not with --no-shell") }
            source = .failed(Deque(Self.failedCommands(in: path)))
        } else if options.pipe == .parts {
            source = .parts(try PipeParts(options: options))
        } else if options.pipe == .blocks {
            source = .blocks(try PipeBlocks(options: options))
        } else {
            source = .arguments(try JobInputs(options: options))
        }
        if case .arguments(let inputs) = source {
            builder = CommandBuilder(options: options, names: inputs.namePositions)
        } else {
            builder = CommandBuilder(options: options)
        }
        slots = options.jobs.slots(cpus: cpus)
        shell = options.noShell ? nil : Self.findShell()
        environment = duplicatedEnvironment(excluding: ["PARALLEL_SEQ=", "PARALLEL_JOBSLOT="])
        output = OutputWriter()
        if let name = options.results, !options.dryRun {
            var headerNames: [String] = []
            if case .arguments(let inputs) = source { headerNames = inputs.headerNames }
            results = try ResultsWriter(name: name, options: options, builder: builder, headerNames: headerNames)
        } else {
            results = nil
        }
        lineBuffer = options.output == .lineBuffered && results == nil && !options.outputFiles
        ungroup = options.output == .ungrouped && results == nil
        devNull = open("/dev/null", O_RDONLY | O_CLOEXEC)
        terminal = options.openTerminal ? open("/dev/tty", O_RDWR | O_CLOEXEC) : -1
        if options.openTerminal, terminal < 0 {
            // As GNU: the jobs run anyway, reading nothing.
            output.writeError("workers run: --tty: cannot open /dev/tty (\(String(cString: strerror(errno)))); the jobs read /dev/null\n")
        }
        if let path = options.joblog, !options.dryRun {
            if options.resume || options.resumeFailed {
                skip = Self.finishedSequences(in: path, failedToo: !options.resumeFailed)
            }
            // `--joblog -` is standard output, as GNU's.
            let exists = path != "-" && fileExists(path)
            let append = path != "-" && (options.joblogAppend || options.resume || options.resumeFailed || options.retryFailed)
            joblog = path == "-" ? fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3)
                : openFile(path, O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0o644)
            guard joblog >= 0 else { throw RunUsageError("cannot open the joblog \(path): \(String(cString: strerror(errno)))") }
            if !(append && exists) {
                write(joblog, "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n")
            }
        }
    }

    deinit {
        if joblog >= 0 { close(joblog) }
        if devNull >= 0 { close(devNull) }
        if terminal >= 0 { close(terminal) }
        for fd in signalPipe where fd >= 0 { close(fd) }
        for fd in spareBuffers { close(fd) }
        for pointer in environment { free(pointer) }
    }

    /// Runs every job; returns GNU parallel's exit status and what happened.
    public func run() -> Summary {
        prepare()
        while true {
            startJobs()
            if state.running.isEmpty {
                if !state.inputLeft || state.stopping { break }
                // Only --delay keeps a job from starting when none runs: wait for it below.
                if options.delay == nil { continue }
            }
            guard waitAndHandle() else { break }
        }
        return conclude()
    }

    // MARK: The run, step by step

    /// Reads all input when something needs its count, and routes the signals to the loop.
    private func prepare() {
        var haltPercent = false
        if let halt = options.halt, case .percent = halt.threshold { haltPercent = true }
        if options.bar || options.multiple != nil || haltPercent || options.shuffle, case .arguments(let inputs) = source {
            var all: Deque<[String]> = []
            while let values = inputs.next() { all.append(values) }
            if options.multiple != nil { all = Deque(groupForMultiple(Array(all))) }
            if options.shuffle { all.shuffle() }
            state.total = all.count
            state.preloaded = all
        }
        state.runStart = monotonicSeconds()
        cworkers_ignore_sigpipe()
        var status = stat()
        watchStdout = fstat(STDOUT_FILENO, &status) == 0 && (status.st_mode & S_IFMT == S_IFIFO || status.st_mode & S_IFMT == S_IFSOCK)
        if cworkers_pipe_cloexec(&signalPipe) == 0 {
            _ = fcntl(signalPipe[1], F_SETFL, O_NONBLOCK)
            _ = cworkers_signals_to_pipe(signalPipe[1])
        }
    }

    /// Starts jobs while there are free slots, work left and no reason to stop or hold back.
    private func startJobs() {
        if options.roundRobin { return feedRoundRobin() }
        while !state.stopping, state.running.count < slots {
            if let delay = options.delay, monotonicSeconds() - state.lastStart < delay { break }
            if options.maximumLoad != nil || options.minimumFreeMemory != nil, !state.running.isEmpty, throttled() { break }
            guard let job = state.retries.popFirst() ?? nextPending() else { break }
            launch(job)
        }
    }

    /// `--round-robin`: gives each block to a running job whose stdin has taken all it was given
    /// (taking turns), starting jobs up to `-j` while blocks wait; when the input is done, closes
    /// the jobs' stdin so they finish. One block waits at most: memory stays at a block per job.
    private func feedRoundRobin() {
        while !state.stopping {
            let count = state.running.count
            let free = (0..<count).map { (state.roundRobinCursor + $0) % count }
                .first { state.running[$0].feed >= 0 && state.running[$0].feedPending.isEmpty }
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
                let sequence = state.nextSequence
                state.nextSequence += 1
                // Its input is a stream: a failed job is not run again.
                launch(Pending(sequence: sequence, arguments: [], attempt: max(1, options.retries)), feedsStdin: true)
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
            for index in state.running.indices where state.running[index].feed >= 0 && state.running[index].feedPending.isEmpty {
                close(state.running[index].feed)
                state.running[index].feed = -1
            }
        }
    }

    /// Writes what the pipe takes of a job's pending block (non-blocking); a job that closed its
    /// stdin loses the rest, as it would with GNU's.
    private func writeFeed(_ index: Int) {
        let fd = state.running[index].feed
        while fd >= 0, state.running[index].feedOffset < state.running[index].feedPending.count {
            let offset = state.running[index].feedOffset
            let written = state.running[index].feedPending.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if written > 0 {
                state.running[index].feedOffset += written
                state.running[index].fed += written
                continue
            }
            if written < 0, errno == EINTR { continue }
            if written < 0, errno == EAGAIN || errno == EWOULDBLOCK { return }
            close(fd)
            state.running[index].feed = -1
            break
        }
        state.running[index].feedPending = []
        state.running[index].feedOffset = 0
    }

    /// The next job from the input (skipping what `--resume` says is done), with its `--pipe`
    /// block ready; `nil` when the input is done.
    private func nextPending() -> Pending? {
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
                // -r: a block of nothing but blanks and newlines starts no job (GNU's).
                if options.skipBlankInputs, block!.allSatisfy({ $0 == 10 || $0 == 32 || $0 == 9 || $0 == 13 }) { continue }
            case .arguments(let inputs):
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
                guard let (fd, path) = namedTemporaryFile(suffix: "") else {
                    output.writeError("workers run: --cat: cannot create a temporary file: \(String(cString: strerror(errno)))\n")
                    state.inputDone = true
                    return nil
                }
                pending.block = fd
                pending.catPath = path
                pending.arguments = [path]
                if let block {
                    pending.blockBytes = block.count
                    writeFully(fd, block)
                } else if let part, case .parts(let parts) = source {
                    pending.blockBytes = part.length
                    _ = copyFileRange(from: parts.fd, offset: part.offset, length: part.length, to: fd)
                }
                return pending
            }
            if let block {
                pending.block = bufferFile()
                pending.blockBytes = block.count
                guard pending.block >= 0 else {
                    output.writeError("workers run: cannot create a temporary file for a --pipe block: \(String(cString: strerror(errno)))\n")
                    state.inputDone = true
                    return nil
                }
                writeFully(pending.block, block)
            }
            if let part, case .parts(let parts) = source {
                pending.block = bufferFile()
                pending.blockBytes = part.length
                guard pending.block >= 0, copyFileRange(from: parts.fd, offset: part.offset, length: part.length, to: pending.block) else {
                    output.writeError("workers run: cannot copy a --pipe-part block: \(String(cString: strerror(errno)))\n")
                    if pending.block >= 0 { close(pending.block) }
                    state.inputDone = true
                    return nil
                }
            }
            return pending
        }
        return nil
    }

    /// `-k`: a job that prints nothing (skipped, or never started) still takes its turn.
    private func passOver(_ sequence: Int) {
        guard options.keepOrder else { return }
        state.waiting[sequence] = Finished(sequence: sequence, tag: nil, stdout: -1, stderr: -1, skipped: true)
        flushInOrder()
    }

    /// Spawns `job` in the lowest free slot (or prints it, `--dry-run`); with `feedsStdin`, its
    /// stdin is a pipe we write its input to (`--round-robin`).
    private func launch(_ job: Pending, feedsStdin: Bool = false) {
        var slot = 1
        while state.usedSlots.contains(slot) { slot += 1 }
        let filled = CommandBuilder.Job(arguments: job.arguments, sequence: job.sequence, slot: slot)
        if options.shellQuoteOnly {
            output.write(shellQuote(job.arguments.joined(separator: " ")) + "\n")
            return
        }
        let command = job.command ?? builder.commandLine(for: filled)
        if options.dryRun {
            output.write(command + "\n")
            return
        }
        if options.printCommands { output.writeError(command + "\n") }
        var directory: String?
        if let template = options.workingDirectory {
            let path = builder.substitute(template, job: filled) { $0 }
            // GNU makes the directory if it is missing.
            if let failure = makeDirectories(path) { output.writeError("workers run: --workdir: \(failure)\n") }
            directory = path
        }
        // --line-buffer -k: a job that is not first in order holds its lines until it is.
        let held = lineBuffer && options.keepOrder && job.sequence != state.nextToPrint
        if job.attempt == 1 { state.summary.started += 1 }
        if job.block >= 0 { lseek(job.block, 0, SEEK_SET) }
        var feed: [Int32] = [-1, -1]
        if feedsStdin {
            guard cworkers_pipe_cloexec(&feed) == 0 else {
                output.writeError("workers run: pipe: \(String(cString: strerror(errno)))\n")
                return
            }
            _ = fcntl(feed[1], F_SETFL, O_NONBLOCK)
        }
        defer { if feed[0] >= 0 { close(feed[0]) } }
        let stdin = feed[0] >= 0 ? feed[0] : job.block >= 0 && job.catPath == nil ? job.block : terminal >= 0 ? terminal : devNull
        // -v: the command line comes first in the job's output (grouped: in its buffer, before
        // the job can write; --line-buffer: printed or held just after the spawn, before any relay).
        switch spawn(filled, command: command, stdin: stdin, directory: directory,
                     preamble: options.verbose && !lineBuffer ? command + "\n" : nil) {
        case .success(let (pid, pidfd, out, err)):
            state.usedSlots.insert(slot)
            let now = monotonicSeconds()
            state.lastStart = now
            var deadline: Double?
            switch options.timeout {
            case .seconds(let seconds): deadline = now + seconds
            case .percentOfMedian(let percent) where state.runtimes.count >= 3:
                deadline = now + median(state.runtimes) * percent / 100
            default: break
            }
            var started = Running(job: job, command: command, slot: slot, pid: pid, pidfd: pidfd, startEpoch: epochSeconds(),
                                  startMonotonic: now, stdout: out, stderr: err, deadline: deadline, tag: tag(job.sequence, job.arguments))
            if held {
                started.heldOut = spareBuffers.popLast() ?? bufferFile()
                started.heldErr = spareBuffers.popLast() ?? bufferFile()
            }
            started.feed = feed[1]
            if options.verbose, lineBuffer {
                output.writeLines((command + "\n").escapedBytes[...], to: held ? started.heldOut : STDOUT_FILENO, tag: held ? nil : started.tag)
            }
            state.running.append(started)
        case .outOfDescriptors(let message) where !state.running.isEmpty:
            // As GNU: fewer jobs at once, none failed. The job starts when one ends.
            if feed[1] >= 0 { close(feed[1]) }
            if job.attempt == 1 { state.summary.started -= 1 }
            state.retries.prepend(job)
            if !state.warnedDescriptors {
                state.warnedDescriptors = true
                output.writeError("workers run: Warning: Only enough file handles to run \(state.running.count) jobs in parallel.\n"
                    + "workers run: Warning: Raise 'ulimit -n' (try: ulimit -n `ulimit -Hn`) to run more (\(message)).\n")
            }
            slots = state.running.count
        case .failure(let message), .outOfDescriptors(let message):
            if job.block >= 0 { close(job.block) }
            if let path = job.catPath { unlink(path) }
            if feed[1] >= 0 { close(feed[1]) }
            output.writeError("workers run: \(message)\n")
            state.summary.failed += 1
            if state.summary.failures.count < 10 { state.summary.failures.append((job.sequence, 127, 0, command)) }
            passOver(job.sequence)
        }
    }

    /// Waits in `poll` for an exit, output (`--line-buffer`), a signal, a deadline or the next
    /// `--delay` start, and handles what came. Returns `false` when `poll` itself fails.
    private func waitAndHandle() -> Bool {
        let now = monotonicSeconds()
        var wake = Double.infinity
        for job in state.running {
            if let due = job.nextSignalAt { wake = min(wake, due) } else if let deadline = job.deadline { wake = min(wake, deadline) }
        }
        if let delay = options.delay, state.running.count < slots, !state.stopping, state.inputLeft { wake = min(wake, state.lastStart + delay) }
        if let throttle = throttleWait(runningCount: state.running.count, halting: state.stopping, inputLeft: state.inputLeft) {
            wake = min(wake, now + throttle)
        }
        let timeout: Int32 = wake.isFinite ? Int32(max(0, min(60_000, ((wake - now) * 1000).rounded(.up)))) : -1
        // The pidfds, then the signal pipe, then (--line-buffer) each job's stdout and stderr.
        var descriptors = state.running.map { pollfd(fd: $0.pidfd, events: Int16(POLLIN), revents: 0) }
        descriptors.append(pollfd(fd: signalPipe[0], events: Int16(POLLIN), revents: 0))
        if lineBuffer {
            for job in state.running {
                descriptors.append(pollfd(fd: job.stdout, events: Int16(POLLIN), revents: 0))
                descriptors.append(pollfd(fd: job.stderr, events: Int16(POLLIN), revents: 0))
            }
        }
        // --round-robin: the stdin pipes that still have part of a block to take.
        let feedBase = descriptors.count
        let feeding = state.running.indices.filter { state.running[$0].feed >= 0 && !state.running[$0].feedPending.isEmpty }
        for index in feeding { descriptors.append(pollfd(fd: state.running[index].feed, events: Int16(POLLOUT), revents: 0)) }
        // A stdout pipe whose reader is gone (`… | head -1`) reports POLLERR: the run ends as
        // GNU's and xargs' do, by SIGPIPE, rather than running every job for no reader.
        let stdoutIndex = descriptors.count
        if watchStdout, state.caughtSignal == nil { descriptors.append(pollfd(fd: STDOUT_FILENO, events: 0, revents: 0)) }
        let ready = poll(&descriptors, nfds_t(descriptors.count), timeout)
        if stdoutIndex < descriptors.count, descriptors[stdoutIndex].revents & Int16(POLLERR | POLLHUP) != 0 {
            state.caughtSignal = SIGPIPE
            terminateAll()
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
        if descriptors[jobs].revents != 0 {
            var byte: UInt8 = 0
            if read(signalPipe[0], &byte, 1) == 1, state.caughtSignal == nil {
                if Int32(byte) == SIGHUP {
                    // As GNU: no new jobs; the running ones finish (SIGTERM stops them).
                    if !state.hangup {
                        state.hangup = true
                        output.writeError("workers run: SIGHUP received. No new jobs will be started.\n"
                            + "workers run: Waiting for these \(state.running.count) jobs to finish. Send SIGTERM to stop now.\n"
                            + state.running.map { "workers run: \($0.command)\n" }.joined())
                    }
                } else {
                    state.caughtSignal = Int32(byte)
                    terminateAll()
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
            let job = state.running.remove(at: index)
            close(job.pidfd)
            if job.feed >= 0 {
                close(job.feed)
                // A block it never began to take goes to another job.
                if job.feedOffset == 0, !job.feedPending.isEmpty { state.roundRobinQueue.prepend(job.feedPending) }
            }
            state.usedSlots.remove(job.slot)
            let (exit, signal) = Self.decode(status)
            finish(job, exit: exit, signal: signal)
        }
        advanceTerminations()
        return true
    }

    /// Puts every running job on the terminate sequence (a signal caught, or `--halt now`).
    private func terminateAll() {
        let now = monotonicSeconds()
        for index in state.running.indices where state.running[index].nextSignalAt == nil {
            state.running[index].nextSignalAt = now
        }
        advanceTerminations()
    }

    /// Time-outs, and every job being stopped: the terminate sequence (`--term-seq`, GNU's
    /// TERM,200,TERM,100,TERM,50,KILL,25 ms by default), sent to the job's process group; its
    /// last signal repeats until the job is gone.
    private func advanceTerminations() {
        let now = monotonicSeconds()
        for index in state.running.indices {
            if !state.running[index].timedOut, state.running[index].nextSignalAt == nil, let deadline = state.running[index].deadline, now >= deadline {
                state.running[index].timedOut = true
                state.running[index].nextSignalAt = now
                output.writeError("workers run: Warning: This job was killed because it timed out:\nworkers run: Warning: \(state.running[index].command)\n")
            }
            if let due = state.running[index].nextSignalAt, now >= due {
                let sequence = options.terminateSequence
                let step = sequence[min(state.running[index].terminateStep, sequence.count - 1)]
                signal(state.running[index].pid, step.signal)
                state.running[index].terminateStep += 1
                state.running[index].nextSignalAt = now + max(step.wait, 0.001)
            }
        }
    }

    /// A job ended: retry it, or log it, count it, print (or save, or hold) its output, and
    /// decide whether `--halt` stops the run.
    private func finish(_ job: Running, exit: Int32, signal: Int32) {
        let runtime = monotonicSeconds() - job.startMonotonic
        let failed = exit != 0 || signal != 0 || job.timedOut
        if failed, job.job.attempt < options.retries, !state.stopping {
            // Only the last attempt's output is printed.
            if !lineBuffer {
                recycle(job.stdout)
                recycle(job.stderr)
            }
            recycle(job.heldOut)
            recycle(job.heldErr)
            var again = job.job
            again.attempt += 1
            state.retries.append(again)
            return
        }
        if job.job.block >= 0 { close(job.job.block) }
        if let path = job.job.catPath { unlink(path) }
        if joblog >= 0 {
            // Receive: the bytes of stdout, as GNU counts them (not known under -u).
            let received = lineBuffer ? job.relayedOut : job.stdout >= 0 ? max(0, Int(lseek(job.stdout, 0, SEEK_END))) : 0
            let line = cFormat("%ld\t:\t%.3f\t%10.3f\t%ld\t%ld\t%d\t%d\t", job.job.sequence, job.startEpoch, runtime, job.job.blockBytes + job.fed, received,
                              job.timedOut ? -1 : exit, job.timedOut ? 15 : signal) + job.command.replacingNewlines(with: "\0") + "\n"
            write(joblog, line)
        }
        if failed {
            state.summary.failed += 1
            if state.summary.failures.count < 10 { state.summary.failures.append((job.job.sequence, exit, signal, job.command)) }
        } else {
            state.summary.succeeded += 1
            state.runtimes.append(runtime)
        }
        if options.json {
            // Keys in sorted order, as before, so consumers that diff the events keep working.
            let arguments = job.job.arguments.map(jsonString).joined(separator: ",")
            output.writeError("{\"args\":[\(arguments)],\"command\":\(jsonString(job.command)),\"exit\":\(exit),"
                + "\"runtime_s\":\(runtime),\"seq\":\(job.job.sequence),\"signal\":\(signal),\"slot\":\(job.slot),"
                + "\"timed_out\":\(job.timedOut)}\n")
        }
        var finished = Finished(sequence: job.job.sequence, tag: job.tag,
                                stdout: lineBuffer ? job.heldOut : job.stdout, stderr: lineBuffer ? job.heldErr : job.stderr)
        if results != nil {
            finished.record = ResultsWriter.Record(
                sequence: job.job.sequence, arguments: job.job.arguments, command: job.command, startEpoch: job.startEpoch,
                runtime: runtime, sent: job.job.blockBytes, exit: job.timedOut ? -1 : exit, signal: job.timedOut ? 15 : signal)
        }
        if !ungroup, !lineBuffer || options.keepOrder {
            if options.keepOrder {
                state.waiting[finished.sequence] = finished
                flushInOrder()
            } else {
                deliver(finished)
            }
        }
        let done = state.summary.succeeded + state.summary.failed
        if options.bar {
            output.progress(Self.bar(done: done, total: state.total.map { $0 - skip.count }, failed: state.summary.failed,
                                     elapsed: monotonicSeconds() - state.runStart, width: 30))
        } else if options.progress {
            output.progress("workers run: \(done) done, \(state.summary.failed) failed, \(state.running.count) running")
        }
        // Under --halt, GNU names each job that counts towards it.
        if let halt = options.halt {
            switch halt.why {
            case .fail where failed: output.writeError("workers run: This job failed:\n\(job.command)\n")
            case .success where !failed: output.writeError("workers run: This job succeeded:\n\(job.command)\n")
            case .done: output.writeError("workers run: This job finished:\n\(job.command)\n")
            default: break
            }
        }
        // --halt …=N% counts N % of every job, as GNU (which reads all input first for it too).
        if state.halting == nil, let halt = options.halt,
           let status = Self.haltStatus(halt, failed: state.summary.failed, succeeded: state.summary.succeeded, total: state.total,
                                        failedNow: failed, exit: exit, signal: signal) {
            state.halting = (halt.when, status)
            if halt.when == .now {
                terminateAll()
            } else if !state.running.isEmpty {
                output.writeError("workers run: Starting no more jobs. Waiting for \(state.running.count) jobs to finish.\n")
            }
        }
    }

    /// Prints a finished job's output, or saves it under `--results`.
    private func deliver(_ finished: Finished) {
        if let results, let record = finished.record {
            if let failure = results.save(record, stdout: finished.stdout, stderr: finished.stderr) {
                stopWithError("--results: \(failure)")
            } else if options.output == .lineBuffered, let path = results.stdoutPath(sequence: record.sequence, arguments: record.arguments) {
                // As GNU: --line-buffer with --results prints where each job's stdout went.
                output.writeLines(Array((path + "\n").utf8)[...], to: STDOUT_FILENO, tag: finished.tag)
            }
        } else if options.outputFiles {
            // --files: the output stays, in a file of its own; its name is what is printed.
            let file = namedTemporaryFile(suffix: ".par")
            if let (fd, path) = file, copyWholeFile(from: finished.stdout, to: fd) {
                output.writeLines(Array((path + "\n").utf8)[...], to: STDOUT_FILENO, tag: finished.tag)
            } else {
                stopWithError("--files: cannot write a file for job \(finished.sequence): \(String(cString: strerror(errno)))")
            }
            if let (fd, _) = file { close(fd) }
            output.print(-1, finished.stderr, tag: finished.tag)
        } else {
            output.print(finished.stdout, finished.stderr, tag: finished.tag)
        }
        recycle(finished.stdout)
        recycle(finished.stderr)
    }

    /// A new file `parXXXXXX<suffix>` in `--tmpdir`, else `$TMPDIR`, else /tmp (GNU's names).
    private func namedTemporaryFile(suffix: String) -> (fd: Int32, path: String)? {
        let directory = options.temporaryDirectory ?? environmentValue("TMPDIR").flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array("\(directory)/parXXXXXX\(suffix)".utf8CString)
        let fd = cworkers_named_temp_file(&template, Int32(suffix.utf8.count))
        guard fd >= 0 else { errno = -fd; return nil }
        return (fd, String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }

    /// An error that ends the run as GNU's do: no new jobs, running ones finish, status 255.
    private func stopWithError(_ message: String) {
        output.writeError("workers run: \(message)\n")
        if state.halting?.status != 255 { state.halting = (.soon, 255) }
    }

    /// `-k`: delivers every finished job whose turn has come, in order.
    private func flushInOrder() {
        while let finished = state.waiting.removeValue(forKey: state.nextToPrint) {
            if !finished.skipped { deliver(finished) }
            state.nextToPrint += 1
        }
        // --line-buffer -k: the job now first in order prints what it held, then goes live.
        if lineBuffer, let index = state.running.firstIndex(where: { $0.job.sequence == state.nextToPrint }), state.running[index].heldOut >= 0 {
            let front = state.running[index]
            output.print(front.heldOut, front.heldErr, tag: front.tag)
            recycle(front.heldOut)
            recycle(front.heldErr)
            state.running[index].heldOut = -1
            state.running[index].heldErr = -1
        }
    }

    /// The last output, the exit status and the failure summary.
    private func conclude() -> Summary {
        flushInOrder()
        // Anything still waiting (a turn that never came) is printed rather than lost.
        for sequence in state.waiting.keys.sorted() {
            if let finished = state.waiting.removeValue(forKey: sequence), !finished.skipped { deliver(finished) }
        }
        if options.bar || options.progress { output.endProgress() }
        var summary = state.summary
        if let signal = state.caughtSignal {
            summary.exitStatus = 128 + signal
            summary.stdoutClosed = signal == SIGPIPE
        } else if let halting = state.halting {
            summary.exitStatus = halting.status
        } else {
            summary.exitStatus = Self.finalStatus(options.halt, failed: summary.failed, total: summary.started)
        }
        // The summary is for a person at a terminal: scripts and test suites compare stderr with
        // GNU's, which has none.
        if summary.failed > 0, !options.dryRun, output.errorIsTerminal {
            var text = "workers run: \(summary.failed) of \(summary.started) job\(summary.started == 1 ? "" : "s") failed\n"
            for failure in summary.failures {
                let how = failure.signal != 0 ? "signal \(failure.signal)" : "exit \(failure.exit)"
                text += "  #\(failure.sequence) (\(how)): \(failure.command)\n"
            }
            if summary.failed > summary.failures.count { text += "  … and \(summary.failed - summary.failures.count) more\n" }
            output.writeError(text)
        }
        return summary
    }

    // MARK: Pieces

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
        let empty = length([""])
        var result: [[String]] = []
        var current: [String] = []
        var currentLength = 0
        for value in values {
            let single = length([value])
            let added = length(["", value]) - empty
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
    private func tag(_ sequence: Int, _ arguments: [String]) -> String? {
        guard options.tag else { return nil }
        if let tagString = options.tagString {
            return builder.substitute(tagString, job: CommandBuilder.Job(arguments: arguments, sequence: sequence, slot: 0)) { $0 }
        }
        return arguments.joined(separator: " ")
    }

    private enum SpawnResult {
        case success((pid_t, Int32, Int32, Int32))
        case failure(String)
        /// The process is out of file descriptors: the job waits for one to be freed.
        case outOfDescriptors(String)

        static func failed(_ what: String, _ code: Int32) -> SpawnResult {
            let message = "\(what): \(String(cString: strerror(code)))"
            return code == EMFILE || code == ENFILE ? .outOfDescriptors(message) : .failure(message)
        }
    }

    /// Starts one job: the shell (or the program itself, for plain words), its output to memory
    /// files (grouped), pipes (`--line-buffer`) or ours (`-u`); `preamble` (`-v`) is written to
    /// its stdout buffer first, `directory` (`--workdir`) is where it runs.
    private func spawn(_ job: CommandBuilder.Job, command: String, stdin: Int32, directory: String?, preamble: String?) -> SpawnResult {
        var argv: [String]
        var resolved: String?
        if let shell {
            argv = [shell, "-c", command]
            // A command of plain words runs as the shell would run it, without the shell: the
            // same program, the same arguments, a fork and an exec fewer.
            if let words = simpleCommandWords(command), let path = programPath(words[0]), execsDirectly(path) {
                argv = words
                resolved = path
            }
        } else {
            argv = builder.argv(for: job)
        }
        guard let program = argv.first, !program.isEmpty else { return .failure("job \(job.sequence): nothing to run") }
        guard let path = resolved ?? programPath(program) else { return .failure("\(program): command not found") }
        var out: Int32 = -1
        var err: Int32 = -1
        var parentEnds: [Int32] = []
        if lineBuffer {
            var outPipe: [Int32] = [-1, -1]
            var errPipe: [Int32] = [-1, -1]
            guard cworkers_pipe_cloexec(&outPipe) == 0 else { return .failed("pipe", errno) }
            guard cworkers_pipe_cloexec(&errPipe) == 0 else {
                let code = errno
                close(outPipe[0]); close(outPipe[1])
                return .failed("pipe", code)
            }
            for fd in [outPipe[0], errPipe[0]] { _ = fcntl(fd, F_SETFL, O_NONBLOCK) }
            out = outPipe[1]
            err = errPipe[1]
            parentEnds = [outPipe[0], errPipe[0]]
        } else if !ungroup {
            out = spareBuffers.popLast() ?? bufferFile()
            err = spareBuffers.popLast() ?? bufferFile()
            guard out >= 0, err >= 0 else {
                let code = errno
                if out >= 0 { close(out) }
                if err >= 0 { close(err) }
                return .failed("cannot create a temporary file", code)
            }
        }
        if let preamble {
            // The child's stdout shares this file's offset: its output lands after the line.
            if ungroup { output.write(preamble) } else if out >= 0 { writeFully(out, preamble.escapedBytes) }
        }
        let sequence = strdup("PARALLEL_SEQ=\(job.sequence)")
        let slot = strdup("PARALLEL_JOBSLOT=\(job.slot)")
        defer { free(sequence); free(slot) }
        let env = environment + [sequence, slot, nil]
        // The program's path and the directory are bytes too (an input can name them).
        let pid = withEscapedCStrings(argv) { argvPointer in
            withEscapedCStrings([path] + (directory.map { [$0] } ?? [])) { paths in
                env.withUnsafeBufferPointer { envPointer in
                    cworkers_spawn_job(paths[0]!, argvPointer, envPointer.baseAddress!, stdin, out, err,
                                       directory == nil ? nil : paths[1], options.niceness, options.openTerminal ? 0 : 1)
                }
            }
        }
        if !parentEnds.isEmpty {
            // The child has the write ends now; ours would keep the pipes open after it exits.
            close(out)
            close(err)
            out = parentEnds[0]
            err = parentEnds[1]
        }
        guard pid > 0 else {
            if out >= 0 { close(out); close(err) }
            return .failed(program, -pid)
        }
        let pidfd = cworkers_pidfd_open(pid)
        guard pidfd >= 0 else {
            signal(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            if out >= 0 { close(out); close(err) }
            return .failed("pidfd_open", -pidfd)
        }
        return .success((pid, pidfd, out, err))
    }

    /// Sends `signal` to a job: to its process group (all it started), or, under `--tty`, where
    /// jobs share ours, to the job alone.
    private func signal(_ pid: pid_t, _ signal: Int32) {
        kill(options.openTerminal ? pid : -pid, signal)
    }

    private var programPaths: [String: String] = [:]

    /// `program`'s path on PATH, remembered as a shell's hash table does (a PATH search is a
    /// system call per directory: a fifth of our time per job before). Misses are not remembered,
    /// so a program that appears during the run is found.
    private func programPath(_ program: String) -> String? {
        if let path = programPaths[program] { return path }
        guard let path = executablePath(program) else { return nil }
        if !program.contains("/") { programPaths[program] = path }
        return path
    }

    private var directPrograms: [String: Bool] = [:]

    /// Whether the kernel runs `path` itself (an ELF binary or a `#!` script), remembered per
    /// path. A shell runs any other executable file as a shell script, so the exec fast path
    /// leaves those to the shell.
    private func execsDirectly(_ path: String) -> Bool {
        if let known = directPrograms[path] { return known }
        var head = [UInt8](repeating: 0, count: 4)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        let count = fd >= 0 ? head.withUnsafeMutableBytes { read(fd, $0.baseAddress, 4) } : -1
        if fd >= 0 { close(fd) }
        // Unreadable (execute-only): let the exec decide, as before.
        let direct = count < 0 || head.starts(with: [0x7F, 0x45, 0x4C, 0x46]) || head.starts(with: [0x23, 0x21])
        directPrograms[path] = direct
        return direct
    }

    /// Where a job's output or `--pipe` block waits: a memory file (memfd), or with `--tmpdir` an
    /// unlinked file there (for outputs too large for memory).
    /// `--line-buffer`: reads what `fd` has, writes every complete line (tagged if asked) to
    /// `target` and keeps the rest; at the end of the pipe (or `final`, when the job has exited),
    /// writes the rest too and closes it.
    /// With `-k`, a job not yet first writes its lines (untagged: the tag is added when they are
    /// printed) to its held buffer instead.
    private func relay(_ job: inout Running, stdout: Bool, final: Bool = false) {
        let held = stdout ? job.heldOut : job.heldErr
        let target = held >= 0 ? held : stdout ? STDOUT_FILENO : STDERR_FILENO
        let tagText = held < 0 ? job.tag : nil
        if stdout {
            job.relayedOut += relayLines(&job.stdout, pending: &job.partialOut, to: target, tag: tagText, final: final)
        } else {
            _ = relayLines(&job.stderr, pending: &job.partialErr, to: target, tag: tagText, final: final)
        }
    }

    /// Returns the bytes read.
    private func relayLines(_ fd: inout Int32, pending: inout [UInt8], to target: Int32, tag tagText: String?, final: Bool) -> Int {
        guard fd >= 0 else { return 0 }
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        var ended = false
        var total = 0
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count > 0 { pending.append(contentsOf: chunk[0..<count]); total += count; continue }
            if count < 0, errno == EINTR { continue }
            ended = count == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)
            break
        }
        if let lastNewline = pending.lastIndex(of: UInt8(ascii: "\n")) {
            output.writeLines(pending[...lastNewline], to: target, tag: tagText)
            pending.removeSubrange(...lastNewline)
        }
        if ended || final {
            if !pending.isEmpty { output.writeLines(pending[...], to: target, tag: tagText) }
            pending.removeAll()
            close(fd)
            fd = -1
        }
        return total
    }

    /// How long to wait before starting another job under `--load` or `--memfree` (re-checked
    /// every second), or `nil` when nothing holds a start back.
    private func throttleWait(runningCount: Int, halting: Bool, inputLeft: Bool) -> Double? {
        guard runningCount < slots, !halting, inputLeft, options.maximumLoad != nil || options.minimumFreeMemory != nil else { return nil }
        return throttled() ? 1.0 : nil
    }

    /// Whether `--load` or `--memfree` holds back the next start now.
    func throttled() -> Bool {
        if let maximum = options.maximumLoad, let text = readTextFile("/proc/loadavg"),
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

    private var spareBuffers: [Int32] = []

    /// Empties a job's output buffer and keeps it for the next job (two fewer files to create and
    /// close per job), or closes it when enough are kept.
    private func recycle(_ fd: Int32) {
        guard fd >= 0 else { return }
        // Most jobs leave a buffer empty (stderr, often stdout): one lseek then, no truncation.
        let empty = lseek(fd, 0, SEEK_END) == 0
        if spareBuffers.count < 16, empty || (ftruncate(fd, 0) == 0 && lseek(fd, 0, SEEK_SET) == 0) {
            spareBuffers.append(fd)
        } else {
            close(fd)
        }
    }

    private func bufferFile() -> Int32 {
        if let directory = options.temporaryDirectory { return cworkers_anonymous_file(directory) }
        return cworkers_memory_file("workers-run")
    }

    private func write(_ fd: Int32, _ text: String) {
        writeFully(fd, text.escapedBytes)
    }
}
