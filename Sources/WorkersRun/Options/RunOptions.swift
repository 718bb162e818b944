#if canImport(Glibc)
import Glibc
#endif
import WorkersCore


/// What `workers run` was asked to do: GNU parallel's options, parsed. Pure.
public struct RunOptions: Sendable, Equatable {
    /// How many jobs run at once (`-j`).
    public enum Jobs: Sendable, Equatable {
        case count(Int)
        /// Percent of the CPUs (`-j 50%`).
        case percent(Double)
        /// CPUs plus n (`-j +2`).
        case plus(Int)
        /// CPUs minus n (`-j -1`).
        case minus(Int)
        /// As many as there are jobs (`-j 0`).
        case unlimited

        /// The number of job slots on a machine with `cpus` CPUs.
        public func slots(cpus: Int) -> Int {
            switch self {
            case .count(let n): max(1, n)
            case .percent(let p): max(1, Int((Double(cpus) * p / 100).rounded(.down)))
            case .plus(let n): max(1, cpus + n)
            case .minus(let n): max(1, cpus - n)
            case .unlimited: Int.max
            }
        }
    }

    /// One input source, in the order given.
    public enum Source: Sendable, Equatable {
        /// `::: a b c`
        case arguments([String])
        /// `:::: file` or `-a file` (`-` is standard input).
        case file(String)
    }

    /// When `--halt` stops the run.
    public struct Halt: Sendable, Equatable {
        /// `now` kills running jobs; `soon` lets them finish. Neither starts new ones.
        public enum When: String, Sendable { case now, soon }
        /// What is counted: failed, succeeded or finished jobs.
        public enum Why: Sendable, Equatable {
            case fail, success, done
        }
        /// How many: a count, or a percentage of all the jobs.
        public enum Threshold: Sendable, Equatable {
            case count(Int)
            case percent(Double)
        }
        /// Whether running jobs are killed.
        public var when: When
        /// What is counted.
        public var why: Why
        /// How many stop the run.
        public var threshold: Threshold
    }

    /// `--timeout secs` or `--timeout N%` (of the median run time so far).
    public enum Timeout: Sendable, Equatable {
        case seconds(Double)
        case percentOfMedian(Double)
    }

    /// `-j`: jobs at once (default one per CPU).
    public var jobs: Jobs = .percent(100)
    /// `-k`: outputs in input order.
    public var keepOrder = false
    /// `--tag`: each output line prefixed with the inputs.
    public var tag = false
    /// `--tagstring`: the prefix, with replacement strings.
    public var tagString: String?
    /// `--dry-run`: print the commands instead of running them.
    public var dryRun = false
    /// How job output reaches stdout; the modes exclude each other.
    public enum OutputMode: Sendable, Equatable {
        /// Each job's output whole, once it ends (`--group`, the default).
        case grouped
        /// Whole lines as they come, jobs mixed line by line (`--line-buffer`).
        case lineBuffered
        /// Passed through as it comes (`-u`).
        case ungrouped
    }
    /// `--group`, `--line-buffer` or `-u`.
    public var output: OutputMode = .grouped
    /// `-q`: the template's words are quoted too.
    public var quoteTemplate = false
    /// `--no-shell`: run the command directly, without a shell.
    public var noShell = false
    /// `-I`: the replacement string for all inputs.
    public var replacement = "{}"
    /// `-N n`: arguments per job, as positional `{1}`…`{n}`.
    public var argumentsPerJob: Int?
    /// `-0`: inputs end with NUL.
    public var nullSeparated = false
    /// `-d`: inputs end with this byte.
    public var delimiter: String?
    /// `--colsep`: a regular expression splitting each input into columns.
    public var columnSeparator: String?
    /// `--link`: sources paired, the shorter ones wrapping.
    public var link = false
    /// Linked to the source before it (`:::+`, `::::+`), per source.
    public var linked: [Bool] = []
    /// Input sources in order (none: standard input).
    public var sources: [Source] = []
    /// `--joblog`: where the job log goes (`-`: standard output).
    public var joblog: String?
    /// `--joblog +file`: append to it.
    public var joblogAppend = false
    /// `--resume`: skip every job the log records.
    public var resume = false
    /// `--resume-failed`: skip the jobs the log records as succeeded.
    public var resumeFailed = false
    /// `--timeout`: stop a job that runs longer.
    public var timeout: Timeout?
    /// `--retries`: attempts a failing job gets in all (`--retries 0`: no limit).
    public var retries = 1
    /// `--halt`: when the run stops early.
    public var halt: Halt?
    /// `--delay`: seconds between job starts, at least.
    public var delay: Double?
    /// How `--pipe` cuts its input into the jobs' stdin.
    public enum PipeMode: Sendable, Equatable {
        /// `--pipe`: standard input (or one file) read and split into blocks.
        case blocks
        /// `--pipe-part`: one seekable file (`-a`) cut by seeking, not reading.
        case parts
    }
    /// `--pipe` or `--pipe-part` (nil: the inputs are arguments).
    public var pipe: PipeMode?
    /// `--block`: bytes per block (default 1 MiB), extended to the end of a record.
    public var blockSize = 1 << 20
    /// `--recend`: the record separator blocks end on (default newline).
    public var recordEnd: [UInt8] = [UInt8(ascii: "\n")]
    /// `--recstart`: the string records start with; with it alone, blocks are cut before it (no
    /// record end); with `--recend` too, between the two.
    public var recordStart: [UInt8] = []
    /// Whether `--recend` was given (with `--recstart` alone, records have no end string).
    public var recordEndGiven = false
    /// What separates two records, and where in it a block is cut (after the end, before the start).
    var recordSeparator: (bytes: [UInt8], cut: Int) {
        let end = recordStart.isEmpty || recordEndGiven ? (recordEnd.isEmpty ? [UInt8(ascii: "\n")] : recordEnd) : []
        return (end + recordStart, end.count)
    }
    /// `--tmpdir DIR`: buffer output (and `--pipe` blocks) in unlinked files there instead of in
    /// memory files.
    public var temporaryDirectory: String?
    /// `-X` (context replace) or `-m`: as many inputs per command line as fit, spread over the
    /// job slots.
    public enum Multiple: Sendable, Equatable { case contextReplace, append }
    /// `-X` or `-m`.
    public var multiple: Multiple?
    /// The longest command line `-X`/`-m` build, in bytes.
    public var maxLineLength = 128 * 1024 - 4096
    /// `--bar` / `--eta`: a progress bar with the time left (reads all input first, to count it).
    public var bar = false
    /// `--load N`: start no job while the 1-minute load average is above N.
    public var maximumLoad: Double?
    /// `--memfree SIZE`: start no job while less memory than this is available.
    public var minimumFreeMemory: Int?
    /// `--json`: one JSON event per finished job, on stderr.
    public var json = false
    /// `--results NAME`: each job's output saved (a tree of directories, files named by a
    /// template, or a CSV/TSV/JSON table) instead of printed.
    public var results: String?
    /// `--progress`: a progress line on stderr.
    public var progress = false
    /// `-v`: each job's command line printed before its output (on stdout, with it).
    public var verbose = false
    /// `-t`/`--verbose`: each job's command line printed on stderr as it starts.
    public var printCommands = false
    /// `--shuf`: the jobs in random order (reads all input first).
    public var shuffle = false
    /// `--nice N`: the jobs' niceness is raised by N.
    public var niceness: Int32 = 0
    /// `--workdir`/`--wd DIR`: the jobs run in DIR (created if missing; replacement strings allowed).
    public var workingDirectory: String?
    /// One step of `--term-seq`: a signal, then how long to wait before the next step.
    public struct TerminateStep: Sendable, Equatable {
        /// The signal sent.
        public var signal: Int32
        /// Seconds until the next step.
        public var wait: Double
        /// A step of `signal` then `wait` seconds.
        public init(signal: Int32, wait: Double) { self.signal = signal; self.wait = wait }
    }
    /// `--term-seq`: how a job is stopped (time-out, `--halt now`, a signal): GNU's default
    /// TERM,200,TERM,100,TERM,50,KILL,25 (milliseconds).
    public var terminateSequence: [TerminateStep] = [
        .init(signal: SIGTERM, wait: 0.2), .init(signal: SIGTERM, wait: 0.1), .init(signal: SIGTERM, wait: 0.05), .init(signal: SIGKILL, wait: 0.025),
    ]
    /// `--shellquote`: print each job's inputs shell-quoted instead of running anything.
    public var shellQuoteOnly = false
    /// `-E STR`: input ends at a value equal to STR.
    public var endOfFile: String?
    /// `-r`/`--no-run-if-empty`: blank input values are skipped.
    public var skipBlankInputs = false
    /// `--trim`: which ends of each input value lose their white space.
    public enum Trim: Sendable, Equatable { case none, left, right, both }
    /// `--trim` (default: none, or both with `--colsep`).
    public var trim: Trim?
    /// `--arg-sep`: what stands for `:::`.
    public var argumentSeparator = ":::"
    /// `--arg-file-sep`: what stands for `::::`.
    public var argumentFileSeparator = "::::"
    /// `--retry-failed`: run again the jobs the joblog records as failed, with its commands.
    public var retryFailed = false
    /// `--tty` / `--open-tty`: jobs read the terminal (`/dev/tty`) and stay in our process group,
    /// which the terminal needs for them to read it; so they are signalled one by one, not as groups.
    public var openTerminal = false
    /// `--semaphore` (GNU's `sem`): run the command once, when fewer than `-j` (default 1) commands
    /// of the same `--id` run; in the background unless `--fg`; `--wait` waits for them all.
    public var semaphore = false
    /// `--id`: the semaphore's name (default: the controlling terminal's).
    public var semaphoreID: String?
    /// `--fg`: the semaphore's command runs in the foreground and its status is ours.
    public var semaphoreForeground = false
    /// `--wait`: wait until every command of the semaphore has ended.
    public var semaphoreWait = false
    /// `--semaphore-timeout`/`--st SECS`: after SECS waiting, run anyway (SECS > 0) or give up (< 0).
    public var semaphoreTimeout: Double?
    /// `--csv`: each input is a CSV row (quoted fields may hold the separator, doubled quotes and
    /// newlines), split into columns at `--colsep` (default `,`), untrimmed.
    public var csv = false
    /// `--cat` (with `--pipe`/`--pipe-part`): each block is saved in a temporary file whose name
    /// is `{}`, removed when the job is done; the job's stdin is /dev/null.
    public var catBlocks = false
    /// `--round-robin` (with `--pipe`): up to `-j` jobs run for the whole input, each block going
    /// through a pipe to one whose stdin has taken what it was given.
    public var roundRobin = false
    /// `--files`: each job's stdout saved in a file of its own under the temporary directory,
    /// whose name is printed instead of the output.
    public var outputFiles = false
    /// `-L n`/`-l[n]`: input lines that end in a blank continue on the next line (as xargs -L);
    /// each job takes `n` such lines, like `-N n`.
    public var joinContinuedLines = false
    /// `--header`: the first value of each source (or, split by `--colsep`, the first line) names
    /// it, for `{name}`; with `--pipe`, the first line (or the first N lines) starts every block.
    public var headerLines: Int?
    /// What `workers run` is asked for instead of running jobs.
    public enum Request: Sendable, Equatable {
        /// `--help`.
        case help
        /// `--version`.
        case version
        /// `--min-version N`: succeed if the GNU version followed is at least N.
        case minimumVersion(Int)
        /// `--max-line-length-allowed`.
        case maximumLineLength
        /// `--number-of-sockets` (and GNU's `--number-of-cpus`), `--number-of-cores`,
        /// `--number-of-threads`.
        case sockets, cores, threads
    }
    /// Set by `--help`, `--version` and the options that print a number: nothing runs.
    public var request: Request?
    /// The command template's words (empty: input lines are commands).
    public var template: [String] = []

    /// GNU parallel's defaults.
    public init() {}
}

/// A bad command line: the message names the option. `workers run` exits with 255, as GNU does.
public struct RunUsageError: Error, Equatable, CustomStringConvertible {
    /// What is wrong, naming the option.
    public var description: String
    /// An error saying `description`.
    public init(_ description: String) { self.description = description }
}
