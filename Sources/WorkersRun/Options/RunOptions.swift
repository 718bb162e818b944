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
        /// Read from a file (`-j FILE`), again whenever a job ends after the file changed.
        case file(String)

        /// The number of job slots on a machine with `cpus` CPUs.
        public func slots(cpus: Int) -> Int {
            switch self {
            case .file(let path):
                // What the file holds, as -j would read it; one slot while it holds nothing valid.
                let text = readTextFile(path).map { trimmed(Substring($0), of: [" ", "\t", "\n", "\r"]) } ?? ""
                guard let jobs = try? RunOptions.parseJobs(String(text), name: "-j"), jobs != self else { return 1 }
                if case .file = jobs { return 1 }
                return jobs.slots(cpus: cpus)
            case .count(let n): return max(1, n)
            case .percent(let p): return max(1, Int((Double(cpus) * p / 100).rounded(.down)))
            case .plus(let n): return max(1, cpus + n)
            case .minus(let n): return max(1, cpus - n)
            case .unlimited: return Int.max
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
    /// `--rpl`: replacement strings defined in Perl, each `TAG CODE`; `--plus`'s, and those
    /// `--extensionreplace` and its siblings rename, come first.
    public var replacementShorthands: [String] = []
    /// `--tee` (with `--pipe` or `--pipe-part`): every job gets all the data, which comes from
    /// this file (`-` is standard input); the other sources are the jobs' arguments.
    public var teeInput: String?
    /// `--plus`: GNU's extra replacement strings (`{..}`, `{%.gz}`, `{##}`, …).
    public var plus = false
    /// `--filter`: Perl expressions that must all be true for a job to run.
    public var filters: [String] = []
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
    /// `--block -N` (`--pipe-part`): N blocks for each job slot, the size worked out from the
    /// file's. `--pipe-part` without `--block` is 10 (GNU's), and with `--round-robin` 1.
    public var blocksPerSlot: Double?
    /// Whether `--block` was given.
    public var blockSizeGiven = false
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
    /// `-N` or `-L` was given: without `-m`, the words around `{}` repeat for each input, as
    /// under `-X` (GNU's context replace), but inputs are not spread over the slots.
    public var repeatsContext = false
    /// The longest command line `-X`/`-m` build, in bytes: GNU's usable length by default.
    public var maxLineLength = CommandLineLimit.usable
    /// `-s` was given: then every command line must be shorter than it (GNU's "Command line too
    /// long"); by default only `-X` and `-m` keep to the limit, and longer lines run.
    public var maxLineLengthGiven = false
    /// Warnings parsing found (GNU warns and goes on), printed when the run starts.
    public var warnings: [String] = []
    /// `--bar` / `--eta`: a progress bar with the time left (reads all input first, to count it).
    public var bar = false
    /// `--load N`: start no job while the 1-minute load average is above N.
    public var maximumLoad: Double?
    /// `--retries` with replacement strings: each job's count is its own, filled in when it ends.
    public var retriesTemplate: String?
    /// `--load FILE`: the limit is what the file holds, read again at each start (GNU's).
    public var maximumLoadFile: String?

    /// A `--load` value: a load average, or N% of the CPUs; `nil` when it is neither.
    static func parseLoad(_ text: String) -> Double? {
        let text = trimmed(text, of: [" ", "\t", "\n", "\r"])
        guard let load = Double(text.hasSuffix("%") ? String(text.dropLast()) : text), load > 0 else { return nil }
        return text.hasSuffix("%") ? load / 100 * Double(cpuCount) : load
    }
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
    /// `--workdir ...`: each job in a directory of its own, removed when it ends.
    public var uniqueWorkingDirectory = false
    /// `-S`/`--sshlogin`: the sshlogins as given, each perhaps several (commas, newlines), in order.
    public var sshLogins: [String] = []
    /// `--slf`/`--sshloginfile`: files of sshlogins (`..`, `.` and `-` as GNU's).
    public var sshLoginFiles: [String] = []
    /// `--ssh CMD` (else `$PARALLEL_SSH`, else `ssh`): the command that logs in to a host.
    public var sshCommand: String?
    /// `--sshdelay SECS`: the least time between two ssh starts.
    public var sshDelay: Double = 0
    /// `--filter-hosts`: hosts that cannot be reached are left out silently.
    public var filterHosts = false
    /// `--transferfile`/`--tf`: files (replacement strings allowed) sent to a job's host first.
    public var transferFiles: [String] = []
    /// `--return`: files (replacement strings allowed) brought back from a job's host after it.
    public var returnFiles: [String] = []
    /// `--cleanup`: transferred and returned files (and base files at the end) removed remotely.
    public var cleanup = false
    /// `--basefile`/`--bf`: files sent to every host once, before its first job.
    public var baseFiles: [String] = []
    /// `--onall`: every job on every host; `--nonall`: the command once on every host, no input.
    public var onAll = false
    public var nonAll = false
    /// `--env NAME`: variables carried to remote jobs (`_`: all but GNU's ignored ones).
    public var environmentNames: [String] = []
    /// `--lost-after SECS` (ours): a host's link silent this long (heartbeats are a second
    /// apart) is taken for cut: its running jobs fail (and run again elsewhere with `--retries`).
    public var lostAfter: Double = 10
    /// `--slurm` (ours): the Slurm allocation's nodes are the hosts, an agent on each by `srun`.
    public var slurm = false
    /// Whether any job may run on another machine.
    public var remote: Bool { !sshLogins.isEmpty || !sshLoginFiles.isEmpty || slurm }
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
    /// `--pipe` with `-L N` or `-l N`: a record is N lines, and blocks are cut between records.
    public var linesPerRecord: Int?
    /// `--header`: what starts the input, and names its columns.
    public enum Header: Sendable, Equatable {
        /// `--header 0`: no header is read; only the names of file sources (`:::: FILE`, `-a FILE`)
        /// are replacement strings (`{FILE}` for that source's value).
        case fileNamesOnly
        /// `--header N` (`:` is 1): with `--pipe`, the first N lines start every block; otherwise
        /// the first line (or each source's first value) names the columns, as GNU's.
        case lines(Int)
        /// `--header REGEXP`: with `--pipe`, the start of the input that the (Perl-style) regexp
        /// matches starts every block; otherwise the first line names the columns, as GNU's.
        case pattern(String)

        /// Whether a header is taken from the input (every form but `--header 0`).
        public var readsInput: Bool { self != .fileNamesOnly }
    }
    /// `--header`; `nil` without it. The first value of each source (or, split by `--colsep`, the
    /// first line) names it, for `{name}`; the names of file sources are replacement strings too.
    public var header: Header?
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
    /// What kind of mistake it is, for callers that handle some of them.
    public enum Code: Sendable, Equatable {
        /// Not an option `workers run` knows, or an abbreviation of several.
        case unknownOption
        /// One of GNU's options that `workers run` does not run (or not in this combination),
        /// or one GNU has retired.
        case unsupportedOption
        /// An option without the value it needs, or a command or separator without its operand.
        case missingValue
        /// An option's value that is not one it takes.
        case invalidValue
        /// Options that exclude or need each other.
        case conflictingOptions
        /// A file, or the `perl` that `{= … =}` needs, that cannot be opened or started.
        case cannotOpen
    }

    /// What kind of mistake it is.
    public var code: Code
    /// What is wrong, naming the option.
    public var description: String
    /// Whether the message goes on to suggest `--help`; not for GNU's own messages, which are
    /// printed as GNU prints them.
    public var suggestsHelp = true
    /// An error of kind `code` saying `description`.
    public init(_ description: String, code: Code) {
        self.description = description
        self.code = code
    }

    /// GNU parallel's own message for the same mistake, word for word ("Error: …"), for scripts
    /// and test suites that compare it.
    public static func gnu(_ message: String, code: Code) -> RunUsageError {
        var error = RunUsageError("Error: " + message, code: code)
        error.suggestsHelp = false
        return error
    }

    /// GNU's message of several lines, each its own "Error:" line.
    public static func gnu(lines: [String], code: Code) -> RunUsageError {
        var error = RunUsageError(lines.map { "Error: " + $0 }.joined(separator: "\n\(programName): "), code: code)
        error.suggestsHelp = false
        return error
    }
}

/// GNU parallel's command-line length limits, computed as GNU computes them, so `-X` and `-m`
/// put as many inputs on a line as GNU does.
///
/// GNU finds the longest command it can run (`--max-line-length-allowed`) by a search that stops
/// within 1 %: lengths 324, ×16 while `echo` with one argument that long runs, then halving. On
/// Linux one argument may be at most 32 pages (`MAX_ARG_STRLEN`, 131,072 bytes with its NUL),
/// so the search always ends at the same number. GNU then keeps 3,000 bytes for its wrapping and
/// halves the rest for hex-encoding remote commands: that is the longest line `-X` builds.
public enum CommandLineLimit {
    /// What GNU's search finds: `--max-line-length-allowed`.
    public static let allowed = search(limit: 131_072)
    /// The longest line `-X` and `-m` build by default, and the most `-s` may ask for.
    public static let usable = (allowed - 3000) / 2

    /// GNU's search, for a system that runs a command of up to `limit` bytes.
    static func search(limit: Int) -> Int {
        var length = 324
        var lower = length
        while length <= limit {
            lower = length
            length *= 16
        }
        var upper = length
        while !(lower == upper || lower == upper - 1 || Double(lower) / Double(upper) > 0.99) {
            let middle = lower + (upper - lower) / 2
            if middle <= limit { lower = middle } else { upper = middle }
        }
        return lower
    }
}
