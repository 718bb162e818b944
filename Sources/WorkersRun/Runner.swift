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
    /// GNU's rules for starting, retrying, halting, timing out and ordering: the decisions,
    /// made without I/O; this class carries them out.
    var scheduler: RunScheduler
    /// Job slots (`-j`), fewer when the process runs out of file descriptors.
    var slots: Int { scheduler.rules.slots }
    let shell: String?
    /// Where the jobs come from: input lines, or `--pipe` blocks, or `--pipe-part` ranges.
    enum Source {
        case arguments(JobInputs)
        case blocks(PipeBlocks)
        case parts(PipeParts)
        /// `--retry-failed`: the joblog's failed jobs, their sequence numbers and commands.
        case failed(Deque<(sequence: Int, command: String)>)
    }
    var source: Source
    /// `--tee`: the data every job is given.
    var tee: TeeInput?
    /// The environment's strings, copied once for every spawn (strdup'd, freed in deinit).
    let environment: [UnsafeMutablePointer<CChar>?]
    /// `$PARALLEL_ENV` (env_parallel's functions, aliases and variables): shell code run before
    /// every command, and not passed on to the jobs as a variable.
    let parallelEnvironment: String?
    /// Where the run started (`--workdir .`, and the jobs' OLDPWD).
    let startDirectory: String
    /// `OLDPWD=…` for jobs that run in a `--workdir`.
    let oldWorkingDirectory: UnsafeMutablePointer<CChar>?
    let output: OutputWriter
    /// `--joblog`.
    var joblog: Joblog?
    var skip: Set<Int> = []
    let devNull: OwnedDescriptor?
    /// `--tty`: the terminal, the jobs' stdin.
    let terminal: OwnedDescriptor?
    /// The signals' way into the poll loop: a handler writes the signal's number to `write`.
    var signalPipe: (read: OwnedDescriptor, write: OwnedDescriptor)?
    /// `--results`: where outputs are saved instead of printed.
    let results: ResultsWriter?
    /// Where the jobs' output goes (`--group`, `--line-buffer`, `-u`, `--files`, `--results`).
    let mode: any OutputMode
    /// `--line-buffer` as it applies: the poll loop relays each job's lines.
    var lineBuffer: Bool { mode.capture == .pipes }
    /// `-u` as it applies: the jobs write to ours.
    var ungroup: Bool { mode.capture == .inherited }
    /// Whether stdout is a pipe or socket, watched for its reader going away.
    var watchStdout = false

    struct Pending {
        var sequence: Int
        var arguments: [String]
        var attempt: Int
        /// `--retry-failed`: the command as the joblog has it (no template to fill).
        var command: String?
        /// `--cat`: the block's file, which is `{}`, removed when the job is done.
        var catPath: String?
        /// `--cat`: a file holding the job's block (`{}`'s file).
        var block: OwnedDescriptor?
        /// `--pipe-part`: the job's part of the file, sent to its stdin through a pipe.
        var part: (offset: Int, length: Int)?
        var blockBytes = 0
        /// `--pipe`: the job's block, written to its stdin through a pipe (as GNU's: `test -p
        /// /dev/stdin` holds, and programs see a pipe, not a file).
        var pipedBlock: [UInt8]?
        /// The hosts it failed on (`--retries` prefers another), and the one it must run on
        /// (`--onall`, `--nonall`).
        var failedHosts: [Int] = []
        var pinnedHost: Int?
        /// `--onall`, `--nonall`: its number among its host's jobs (the joblog's, as GNU's).
        var hostSequence: Int?
    }

    struct Running {
        var job: Pending
        var command: String
        var slot: Int
        /// The process (0 for a remote job) and the pidfd the loop waits on (none for a remote
        /// job: its exit is a frame on its host's link).
        var pid: pid_t
        var pidfd: OwnedDescriptor?
        /// With hosts (`-S`, `--slf`, `--slurm`): where it runs; and a remote job's link id.
        var host: Int?
        var remote: RemoteHandle?
        var startEpoch: Double
        var startMonotonic: Double
        /// Its output: memory files (grouped), or the read ends of pipes (`--line-buffer`, until
        /// they end); none under `-u`, where it writes to ours.
        var stdout: OwnedDescriptor?
        var stderr: OwnedDescriptor?
        /// `--tag`/`--tagstring`: the prefix of each of its output lines, worked out once.
        var tag: String?
        /// `--line-buffer`: what came after the last newline on stdout and stderr.
        var partialOut: [UInt8] = []
        var partialErr: [UInt8] = []
        /// `--line-buffer -k`: the whole lines of a job that is not yet first in order, held in
        /// buffers until it is (then they are printed and the rest comes live).
        var heldOut: OwnedDescriptor?
        var heldErr: OwnedDescriptor?
        /// `--workdir ...`: the job's own directory, removed with all in it when it ends.
        var removeDirectory: String?
        /// `--line-buffer`: the bytes of stdout read so far, for the joblog.
        var relayedOut = 0
        /// `--pipe`, `--round-robin`: the write end of the job's stdin (set to `nil`, it closes and
        /// the job sees the end of its input), the block it is being given and how much of it
        /// went in, and the bytes sent in all.
        var feed: OwnedDescriptor?
        var feedPending: [UInt8] = []
        var feedOffset = 0
        var fed = 0
        /// `--pipe-part`: what is left of the job's part, sent from the file by `sendfile`.
        var feedFile: (fd: Int32, offset: Int, end: Int)?

        /// The bytes it was given on stdin (the joblog's Send): its block, or what was fed.
        var sent: Int { job.blockBytes + fed }
    }

    struct Finished {
        var sequence: Int
        /// `--tag`: the prefix of its output lines.
        var tag: String?
        var stdout: OwnedDescriptor?
        var stderr: OwnedDescriptor?
        var skipped = false
        /// What `--results` records of the job.
        var record: ResultsWriter.Record?
    }

    /// Everything one run knows, in one place.
    struct State {
        /// The first ten failures, for the summary.
        var failures: [(sequence: Int, exit: Int32, signal: Int32, command: String)] = []
        /// Failed jobs with attempts left, started before new input.
        var retries: Deque<Pending> = []
        var running: [Running] = []
        var nextSequence = 1
        var inputDone = false
        /// The input that had no whole record when a job could have started: waited for beside
        /// the jobs, once.
        var inputToWaitFor: Int32?
        /// Whether the descriptor limit was met and said so.
        var warnedDescriptors = false
        /// The run ended in an error that prints none of its jobs' output (GNU's `wait_and_exit`).
        var discardsOutput = false
        /// `-k`: the finished jobs waiting for their turn.
        var inOrder = InOrder()
        /// `--bar`, `-X`/`-m` and `--halt …%` read all input first; `total` counts it.
        var preloaded: Deque<[String]>?
        var total: Int?
        var runStart = 0.0

        /// `--round-robin`: a block read but not yet given to a job, and where the next search for
        /// a job with room starts.
        var roundRobinQueue: Deque<[UInt8]> = []
        var roundRobinCursor = 0

        /// `--onall`, `--nonall`: the jobs, a job per host per input, made once, waiting to start.
        var everyHostQueue: Deque<Pending> = []
        var everyHostIssued = false

        var inputLeft: Bool { !(inputDone && retries.isEmpty && roundRobinQueue.isEmpty) }
    }
    var state = State()

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

    // Caches kept across jobs (stored here: extensions in other files cannot hold them).
    var programs = ProgramLookup()

    var spareBuffers: [OwnedDescriptor] = []

    /// `-S`, `--slf`, `--slurm`: the hosts, the next remote job's id, what `--env` carries, the
    /// slots of the usable hosts, and the `--slf` files' change times.
    var hosts: [RunHost] = []
    var nextRemoteID: UInt64 = 1
    lazy var remoteEnvironment: [String] = Self.remoteEnvironment(names: options.environmentNames)
    var loginFileTimes: [String: timespec?] = [:]
    var lastLoginFileCheck = 0.0

    /// The machine's CPUs, for `-j` forms that depend on them (`-j FILE` is read again).
    let cpus: Int
    /// `-j FILE`: when the file last changed, as read.
    var jobsFileChanged: timespec?

    /// A runner for `options` on a machine with `cpus` CPUs; opens the joblog and the inputs.
    ///
    /// - Throws: ``RunUsageError`` for an input file or joblog that cannot be opened.
    public init(options: RunOptions, cpus: Int) throws(RunUsageError) {
        self.options = options
        self.cpus = cpus
        // --joblog - is stdout, which holds no earlier run: GNU then runs the inputs as usual.
        if options.retryFailed, let path = options.joblog, path != "-" {
            guard !options.noShell else { throw RunUsageError("option --retry-failed runs the joblog's commands with a shell; not with --no-shell", code: .conflictingOptions) }
            source = .failed(Deque(Self.failedCommands(in: path)))
        } else if let path = options.teeInput {
            // --tee: the ::: inputs are the jobs, and each is given all the data.
            source = .arguments(try JobInputs(options: options))
            let (fd, owned) = try openInput(path)
            tee = TeeInput(fd: fd, closeWhenDone: owned)
        } else if options.pipe == .parts {
            source = .parts(try PipeParts(options: options, slots: options.jobs.slots(cpus: cpus)))
        } else if options.pipe == .blocks {
            source = .blocks(try PipeBlocks(options: options))
        } else {
            source = .arguments(try JobInputs(options: options))
        }
        if case .arguments(let inputs) = source {
            builder = try CommandBuilder(options: options, names: inputs.namePositions)
        } else {
            builder = try CommandBuilder(options: options)
        }
        scheduler = RunScheduler(rules: .init(options: options, slots: options.jobs.slots(cpus: cpus)))
        shell = options.noShell ? nil : Self.findShell()
        // A job run in a --workdir gets PWD=DIR and OLDPWD=where we started, as GNU's `cd DIR
        // && …` gives it (so `pwd` says /bin, not the /usr/bin a link leads to).
        let movesJobs = options.workingDirectory != nil || options.uniqueWorkingDirectory
        environment = duplicatedEnvironment(excluding: ["PARALLEL_SEQ=", "PARALLEL_JOBSLOT=", "PARALLEL_ENV="] + (movesJobs ? ["OLDPWD=", "PWD="] : []))
        if let cwd = getcwd(nil, 0) {
            startDirectory = escapedString(cString: cwd)
            free(cwd)
        } else {
            startDirectory = "."
        }
        oldWorkingDirectory = movesJobs ? ("OLDPWD=" + startDirectory).withEscapedCString { strdup($0) } : nil
        output = OutputWriter()
        parallelEnvironment = Self.readParallelEnvironment(output: output)
        for warning in options.warnings { output.writeError("\(programName): \(warning)\n") }
        if let name = options.results, !options.dryRun {
            var headerNames: [String] = []
            if case .arguments(let inputs) = source { headerNames = inputs.headerNames }
            results = try ResultsWriter(name: name, options: options, builder: builder, headerNames: headerNames)
        } else {
            results = nil
        }
        mode = Self.outputMode(options, results: results)
        devNull = OwnedDescriptor(open("/dev/null", O_RDONLY | O_CLOEXEC))
        terminal = options.openTerminal ? OwnedDescriptor(open("/dev/tty", O_RDWR | O_CLOEXEC)) : nil
        // Without a terminal the jobs read /dev/null, silently, as GNU's do.
        if let path = options.joblog, !options.dryRun {
            if options.resume || options.resumeFailed {
                skip = Self.finishedSequences(in: path, failedToo: !options.resumeFailed)
            }
            // `$Global::total_completed` counts the jobs the joblog has (GNU bug #47086).
            builder.perl?.completed = skip.count
            // `--joblog -` is standard output, as GNU's.
            joblog = try Joblog(path: path, appending: options.joblogAppend || options.resume || options.resumeFailed || options.retryFailed)
        }
    }

    deinit {
        for pointer in environment { free(pointer) }
        free(oldWorkingDirectory)
    }

    /// Runs every job; returns GNU parallel's exit status and what happened.
    public func run() -> Summary {
        prepare()
        while true {
            startJobs()
            if state.running.isEmpty {
                if !state.inputLeft || scheduler.stopping { break }
                // Only --delay keeps a job from starting when none runs: wait for it below.
                if options.delay == nil { continue }
            }
            guard waitAndHandle() else { break }
        }
        return conclude()
    }

    // MARK: The run, step by step

    /// Reads all input when something needs its count, and routes the signals to the loop.
    func prepare() {
        var haltPercent = false
        if let halt = options.halt, case .percent = halt.threshold { haltPercent = true }
        if options.bar || options.multiple != nil || haltPercent || options.shuffle || builder.needsTotal || tee != nil, case .arguments(let inputs) = source {
            var all: Deque<[String]> = []
            let readStart = monotonicSeconds()
            var warnedSlowRead = false
            while let values = inputs.next() {
                all.append(values)
                if !warnedSlowRead, monotonicSeconds() - readStart > 10 {
                    // GNU's warning (then it reads on): the count is what arrived in the 10 s.
                    warnedSlowRead = true
                    output.writeError("\(programName): Warning: Reading \(all.count) arguments took longer than 10 seconds.\n"
                        + (options.bar ? "\(programName): Warning: Consider removing --bar.\n" : "")
                        + (options.shuffle ? "\(programName): Warning: Consider removing --shuf.\n" : ""))
                }
            }
            if options.multiple != nil { all = Deque(groupForMultiple(Array(all))) }
            if options.shuffle { all.shuffle() }
            state.total = all.count
            state.preloaded = all
            builder.perl?.totalJobs = all.count
            if tee != nil, all.count > slots {
                // Every --tee job must run at once.
                output.writeError("\(programName): Error: --tee requires --jobs to be higher. Try --jobs 0.\n")
                scheduler.stopWithError()
                state.preloaded = []
            }
        }
        if options.remote, !options.dryRun { connectHosts() }
        builder.perl?.slots = slots
        if case .file(let path) = options.jobs { jobsFileChanged = Self.modified(path) }
        state.runStart = monotonicSeconds()
        cworkers_ignore_sigpipe()
        var status = stat()
        watchStdout = fstat(STDOUT_FILENO, &status) == 0 && (status.st_mode & S_IFMT == S_IFIFO || status.st_mode & S_IFMT == S_IFSOCK)
        if let pipe = ownedPipe() {
            _ = fcntl(pipe.write.raw, F_SETFL, O_NONBLOCK)
            _ = cworkers_signals_to_pipe(pipe.write.raw)
            signalPipe = pipe
        }
    }
}

extension Runner {
    /// `-j FILE`: when a job ends and the file has changed, the slots are what it holds now
    /// (GNU's rule).
    func rereadJobsFile() {
        guard case .file(let path) = options.jobs, let changed = Self.modified(path) else { return }
        if let known = jobsFileChanged, known.tv_sec == changed.tv_sec, known.tv_nsec == changed.tv_nsec { return }
        jobsFileChanged = changed
        scheduler.setSlots(options.jobs.slots(cpus: cpus))
    }

    static func modified(_ path: String) -> timespec? {
        var status = stat()
        return path.withEscapedCString { stat($0, &status) } == 0 ? status.st_mtim : nil
    }
}

/// `--tee`: the data, read a chunk at a time and given to every job before the next is read (so
/// the slowest job sets the pace and memory stays one chunk).
final class TeeInput {
    let fd: Int32
    private let closeWhenDone: Bool
    private(set) var ended = false
    private var chunk = [UInt8](repeating: 0, count: 1 << 20)

    init(fd: Int32, closeWhenDone: Bool) {
        self.fd = fd
        self.closeWhenDone = closeWhenDone
    }

    deinit { if closeWhenDone { close(fd) } }

    /// The next chunk, or `nil` when a read would wait (or the data has ended: see ``ended``).
    func nextChunk() -> [UInt8]? {
        guard !ended else { return nil }
        var probe = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&probe, 1, 0) > 0 else { return nil }
        let count = chunk.withUnsafeMutableBytes { readRetryingInterrupts(fd, into: $0) }
        guard count > 0 else { ended = true; return nil }
        return Array(chunk[0..<count])
    }
}

extension Runner {
    /// GNU's `$PARALLEL_ENV`: the variable's value, or the contents of the file or fifo it names,
    /// with \001 standing for a newline.
    static func readParallelEnvironment(output: OutputWriter) -> String? {
        guard let value = environmentValue("PARALLEL_ENV"), !value.isEmpty else { return nil }
        let text = fileExists(value) ? readTextFile(value) ?? value : value
        if text.contains("\0") { output.writeError("\(programName): Warning: \\0 (NUL) in environment is not supported\n") }
        return text.replacing("\u{01}", with: "\n")
    }
}
