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
    /// `-u`: output passed through as it comes.
    public var ungroup = false
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
    /// `--joblog`: where the job log goes.
    public var joblog: String?
    /// `--joblog +file`: append to it.
    public var joblogAppend = false
    /// `--resume`: skip every job the log records.
    public var resume = false
    /// `--resume-failed`: skip the jobs the log records as succeeded.
    public var resumeFailed = false
    /// `--timeout`: stop a job that runs longer.
    public var timeout: Timeout?
    /// `--retries`: attempts a failing job gets in all.
    public var retries = 1
    /// `--halt`: when the run stops early.
    public var halt: Halt?
    /// `--delay`: seconds between job starts, at least.
    public var delay: Double?
    /// `--pipe`: stdin split into blocks that become the jobs' stdin.
    public var pipe = false
    /// `--pipe-part`: like `--pipe`, for one seekable file (`-a`), cut by seeking, not reading.
    public var pipePart = false
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
    /// `--line-buffer`: whole lines as they come, jobs mixed line by line.
    public var lineBuffer = false
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
    /// `-t`: each job's command line printed on stderr as it starts.
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

extension RunOptions {
    /// Options GNU parallel has that `workers run` does not, named so scripts learn at once.
    static let unsupported: Set<String> = [
        "--sshlogin", "-S", "--slf", "--sshloginfile", "--transferfile", "--return", "--cleanup", "--trc",
        "--basefile", "--bf", "--nonall", "--onall",
        "--sql", "--sqlmaster", "--sqlworker", "--sqlandworker", "--shard", "--tmux", "--tmuxpane", "--rpl",
        "--plus",
        "--memsuspend",
        "--noswap",
        "--ctag", "--ctagstring", "--compress", "--record-env", "--limit",
        "--citation", "--bibtex",
        "--fifo", "--filter-hosts",
    ]

    /// Parses `workers run`'s arguments as GNU parallel does: options first, then the command,
    /// then input sources after `:::`, `::::`, `:::+` and `::::+`.
    public static func parse(_ arguments: [String]) throws(RunUsageError) -> RunOptions {
        var options = RunOptions()
        var index = 0
        var jobsGiven = false, groupGiven = false, ttyDefaults = false
        func value(_ name: String, inline: String?) throws(RunUsageError) -> String {
            if let inline { return inline }
            index += 1
            guard index < arguments.count else { throw RunUsageError("option \(name) needs a value") }
            return arguments[index]
        }
        func integer(_ name: String, _ text: String, minimum: Int) throws(RunUsageError) -> Int {
            guard let number = Int(text), number >= minimum else { throw RunUsageError("option \(name): '\(text)' is not a whole number of at least \(minimum)") }
            return number
        }
        // Options, until the first word that is not one.
        while index < arguments.count {
            let word = arguments[index]
            if options.isSeparator(word) { break }
            if word == "--" { index += 1; break }
            guard word.hasPrefix("-"), word.count > 1 else { break }
            var name = word
            var inline: String?
            if word.hasPrefix("--"), let equals = word.firstIndex(of: "=") {
                name = String(word[..<equals])
                inline = String(word[word.index(after: equals)...])
            } else if !word.hasPrefix("--"), word.count > 2, ["-j", "-P", "-N", "-n", "-I", "-d", "-C", "-a", "-s", "-L", "-l", "-E"].contains(String(word.prefix(2))) {
                name = String(word.prefix(2))
                inline = String(word.dropFirst(2))
            }
            switch name {
            case "-j", "-P", "--jobs", "--max-procs":
                options.jobs = try parseJobs(try value(name, inline: inline), name: name)
                jobsGiven = true
            case "-k", "--keep-order": options.keepOrder = true
            case "--tag": options.tag = true
            case "--tagstring": options.tagString = try value(name, inline: inline); options.tag = true
            case "--dry-run", "--dryrun": options.dryRun = true
            case "-u", "--ungroup": options.ungroup = true
            case "--group": options.ungroup = false; groupGiven = true
            case "-q", "--quote": options.quoteTemplate = true
            case "--no-shell": options.noShell = true
            case "-I", "--replace", "-i":
                options.replacement = try value(name, inline: inline)
                guard !options.replacement.isEmpty else { throw RunUsageError("option \(name) needs a non-empty string") }
            case "-N", "--max-replace-args", "-n", "--max-args":
                // -N0: one job per input, with none of them on its command line (GNU's).
                options.argumentsPerJob = try integer(name, try value(name, inline: inline), minimum: 0)
            case "-0", "--null": options.nullSeparated = true
            case "-d", "--delimiter": options.delimiter = unescape(try value(name, inline: inline))
            case "-C", "--colsep": options.columnSeparator = try value(name, inline: inline)
            case "--trim":
                let text = try value(name, inline: inline)
                switch text {
                case "n": options.trim = Trim.none
                case "l": options.trim = .left
                case "r": options.trim = .right
                case "lr", "rl": options.trim = .both
                default: throw RunUsageError("option --trim: '\(text)' is not n, l, r, lr or rl")
                }
            case "-v", "--verbose": options.verbose = true
            case "-t": options.printCommands = true
            case "--shuf": options.shuffle = true
            case "--nice":
                let text = try value(name, inline: inline)
                guard let niceness = Int32(text), (-20...19).contains(niceness) else { throw RunUsageError("option --nice: '\(text)' is not a niceness from -20 to 19") }
                options.niceness = niceness
            case "--workdir", "--wd":
                let directory = try value(name, inline: inline)
                guard directory != "..." else { throw RunUsageError("option --workdir ... (a temporary directory per job) is not supported by workers run") }
                options.workingDirectory = directory == "." ? nil : directory
            case "--term-seq", "--termseq": options.terminateSequence = try parseTerminateSequence(try value(name, inline: inline))
            case "--shellquote": options.shellQuoteOnly = true
            case "-E", "--eof": options.endOfFile = try value(name, inline: inline)
            case "-r", "--no-run-if-empty": options.skipBlankInputs = true
            case "--arg-sep", "--argsep":
                options.argumentSeparator = try value(name, inline: inline)
                guard !options.argumentSeparator.isEmpty else { throw RunUsageError("option --arg-sep needs a non-empty string") }
            case "--arg-file-sep", "--argfilesep":
                options.argumentFileSeparator = try value(name, inline: inline)
                guard !options.argumentFileSeparator.isEmpty else { throw RunUsageError("option --arg-file-sep needs a non-empty string") }
            case "--retry-failed": options.retryFailed = true
            case "--files": options.outputFiles = true
            case "--tty": options.openTerminal = true; ttyDefaults = true
            case "--open-tty", "-o": options.openTerminal = true
            case "--round-robin", "--round": options.roundRobin = true
            case "--cat": options.catBlocks = true
            case "--csv": options.csv = true
            case "--semaphore", "--sem": options.semaphore = true
            case "--id": options.semaphoreID = try value(name, inline: inline)
            case "--fg": options.semaphoreForeground = true
            case "--bg": options.semaphoreForeground = false
            case "--wait": options.semaphoreWait = true
            case "--semaphore-timeout", "--semaphoretimeout", "--st":
                let text = try value(name, inline: inline)
                guard let seconds = Double(text) else { throw RunUsageError("option \(name): '\(text)' is not a number of seconds") }
                options.semaphoreTimeout = seconds
            case "-L", "--max-lines":
                options.argumentsPerJob = try integer(name, try value(name, inline: inline), minimum: 1)
                options.joinContinuedLines = true
            case "-l":
                options.argumentsPerJob = try inline.map { text throws(RunUsageError) in try integer(name, text, minimum: 1) } ?? 1
                options.joinContinuedLines = true
            case "--header":
                let text = try value(name, inline: inline)
                if text == ":" || text == ".*\\n" {
                    options.headerLines = 1
                } else if let lines = Int(text), lines >= 0 {
                    options.headerLines = lines == 0 ? nil : lines
                } else {
                    throw RunUsageError("option --header: '\(text)' is not : or a number of lines (a header regexp is not supported)")
                }
            case "--env": _ = try value(name, inline: inline)  // jobs run here: they inherit the whole environment already
            case "-a", "--arg-file": options.sources.append(.file(try value(name, inline: inline))); options.linked.append(false)
            case "--link", "--xapply": options.link = true
            case "--joblog":
                var path = try value(name, inline: inline)
                if path.hasPrefix("+") { options.joblogAppend = true; path.removeFirst() }
                options.joblog = path
            case "--resume": options.resume = true
            case "--resume-failed": options.resumeFailed = true
            case "--timeout": options.timeout = try parseTimeout(try value(name, inline: inline))
            case "--retries": options.retries = try integer(name, try value(name, inline: inline), minimum: 1)
            case "--halt", "--halt-on-error": options.halt = try parseHalt(try value(name, inline: inline))
            case "--delay":
                let text = try value(name, inline: inline)
                guard let seconds = Double(text.hasSuffix("s") ? String(text.dropLast()) : text), seconds >= 0 else {
                    throw RunUsageError("option --delay: '\(text)' is not a number of seconds")
                }
                options.delay = seconds
            case "--pipe", "--spreadstdin": options.pipe = true
            case "--pipe-part", "--pipepart": options.pipe = true; options.pipePart = true
            case "--block", "--block-size", "--bs": options.blockSize = try parseSize(try value(name, inline: inline), name: name)
            case "--recend": options.recordEnd = Array(unescape(try value(name, inline: inline)).utf8); options.recordEndGiven = true
            case "--recstart": options.recordStart = Array(unescape(try value(name, inline: inline)).utf8)
            case "--tmpdir", "--tempdir": options.temporaryDirectory = try value(name, inline: inline)
            case "--line-buffer", "--lb", "--linebuffer": options.lineBuffer = true
            case "--results", "--result", "--res":
                let name = try value(name, inline: inline)
                guard !name.isEmpty else { throw RunUsageError("option --results needs a name") }
                options.results = name
            case "-X": options.multiple = .contextReplace
            case "-m": options.multiple = .append
            case "--xargs": options.multiple = .append; options.jobs = .count(1)
            case "-s", "--max-chars": options.maxLineLength = try integer(name, try value(name, inline: inline), minimum: 16)
            case "--bar", "--eta": options.bar = true
            case "--load":
                let text = try value(name, inline: inline)
                guard let load = Double(text.hasSuffix("%") ? String(text.dropLast()) : text), load > 0 else {
                    throw RunUsageError("option --load: '\(text)' is not a load average")
                }
                options.maximumLoad = text.hasSuffix("%") ? load / 100 * Double(cpuCount) : load
            case "--memfree": options.minimumFreeMemory = try parseSize(try value(name, inline: inline), name: name)
            case "--json": options.json = true
            case "--progress": options.progress = true
            case "--will-cite", "--no-notice", "--gnu": break  // accepted; there is no notice
            default:
                if unsupported.contains(name) {
                    throw RunUsageError("option \(name) is not supported by workers run")
                }
                throw RunUsageError("unknown option \(name)")
            }
            index += 1
        }
        // The command, until the first source separator.
        while index < arguments.count, !options.isSeparator(arguments[index]) {
            options.template.append(arguments[index])
            index += 1
        }
        // Input sources.
        while index < arguments.count {
            let separator = arguments[index]
            index += 1
            var values: [String] = []
            while index < arguments.count, !options.isSeparator(arguments[index]) {
                values.append(arguments[index])
                index += 1
            }
            let linked = separator.hasSuffix("+")
            if separator == options.argumentFileSeparator || separator == options.argumentFileSeparator + "+" {
                guard !values.isEmpty else { throw RunUsageError("\(separator) needs a file name") }
                for (offset, file) in values.enumerated() {
                    options.sources.append(.file(file))
                    options.linked.append(linked && offset == 0)
                }
            } else {
                // `:::` values are split on newlines, as GNU does.
                options.sources.append(.arguments(values.flatMap { $0.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) }))
                options.linked.append(linked)
            }
        }
        // A semaphore is a mutex unless -j says otherwise; --fg, --wait and --id imply one.
        if options.semaphoreForeground || options.semaphoreWait || options.semaphoreID != nil { options.semaphore = true }
        if options.semaphore, !jobsGiven { options.jobs = .count(1) }
        // --tty: one job at a time and output passed through, unless -j or --group say otherwise.
        if ttyDefaults {
            if !jobsGiven { options.jobs = .count(1) }
            if !groupGiven { options.ungroup = true }
        }
        if options.ungroup { options.keepOrder = false; options.tag = false; options.lineBuffer = false }  // as GNU: -u drops -k and --tag
        // GNU evaluates `{= perl =}` with Perl; running the text as shell code instead would be
        // silently wrong, so it is refused by name.
        if options.template.contains(where: { $0.contains("{=") && $0.contains("=}") }) {
            throw RunUsageError("Perl replacement strings {= … =} are not supported by workers run")
        }
        if options.pipe || options.pipePart, options.argumentsPerJob == 0 {
            throw RunUsageError("option -N0 cannot be used with --pipe or --pipe-part")
        }
        if options.pipePart, options.argumentsPerJob != nil {
            throw RunUsageError("option --pipe-part cuts by --block; -N is not supported with it")
        }
        if options.multiple != nil, options.pipe {
            throw RunUsageError("option -X/-m cannot be used with --pipe")
        }
        if options.csv {
            guard !options.pipe else { throw RunUsageError("option --csv cannot be used with --pipe") }
            if options.columnSeparator == nil { options.columnSeparator = "," }
            if options.trim == nil { options.trim = Trim.none }
        }
        if options.headerLines != nil, !options.pipe {
            // GNU splits the header (and so the values) on tabs unless --colsep says otherwise.
            if options.columnSeparator == nil { options.columnSeparator = "\t" }
        }
        if options.catBlocks, !options.pipe || options.roundRobin {
            throw RunUsageError("option --cat needs --pipe or --pipe-part (and is not supported with --round-robin)")
        }
        if options.roundRobin, !options.pipe || options.pipePart {
            throw RunUsageError("option --round-robin needs --pipe (and is not supported with --pipe-part)")
        }
        if options.joinContinuedLines, options.pipe {
            throw RunUsageError("option -L with --pipe is not supported by workers run (use -N)")
        }
        if options.headerLines != nil, options.pipePart {
            throw RunUsageError("option --header with --pipe-part is not supported by workers run (use --pipe)")
        }
        if options.retryFailed, options.joblog == nil {
            throw RunUsageError("option --retry-failed needs --joblog")
        }
        if options.resume || options.resumeFailed, options.joblog == nil, options.results == nil {
            throw RunUsageError("option --resume and --resume-failed need --joblog or --results")
        }
        return options
    }

    /// Whether `word` starts an input source: `:::`, `::::`, `:::+`, `::::+` (or their
    /// `--arg-sep`/`--arg-file-sep` replacements).
    func isSeparator(_ word: String) -> Bool {
        word == argumentSeparator || word == argumentSeparator + "+" || word == argumentFileSeparator || word == argumentFileSeparator + "+"
    }

    /// `--term-seq`: `SIGNAL,ms,SIGNAL,ms,…` (names with or without `SIG`, or numbers).
    static func parseTerminateSequence(_ text: String) throws(RunUsageError) -> [TerminateStep] {
        let names: [String: Int32] = [
            "HUP": SIGHUP, "INT": SIGINT, "QUIT": SIGQUIT, "KILL": SIGKILL, "USR1": SIGUSR1, "USR2": SIGUSR2,
            "TERM": SIGTERM, "ALRM": SIGALRM, "CONT": SIGCONT, "STOP": SIGSTOP, "TSTP": SIGTSTP,
        ]
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        var steps: [TerminateStep] = []
        var index = 0
        while index < parts.count {
            let name = parts[index].uppercased().hasPrefix("SIG") ? String(parts[index].uppercased().dropFirst(3)) : parts[index].uppercased()
            guard let signal = names[name] ?? Int32(name).flatMap({ (1..<65).contains($0) ? $0 : nil }) else {
                throw RunUsageError("option --term-seq: '\(parts[index])' is not a signal")
            }
            var wait = 0.0
            if index + 1 < parts.count {
                guard let milliseconds = Double(parts[index + 1]), milliseconds >= 0 else {
                    throw RunUsageError("option --term-seq: '\(parts[index + 1])' is not a number of milliseconds")
                }
                wait = milliseconds / 1000
            }
            steps.append(TerminateStep(signal: signal, wait: wait))
            index += 2
        }
        guard !steps.isEmpty else { throw RunUsageError("option --term-seq needs at least one signal") }
        return steps
    }

    static func parseJobs(_ text: String, name: String) throws(RunUsageError) -> Jobs {
        if text.hasSuffix("%"), let percent = Double(text.dropLast()), percent > 0 { return .percent(percent) }
        if text.hasPrefix("+"), let n = Int(text.dropFirst()), n >= 0 { return .plus(n) }
        if text.hasPrefix("-"), let n = Int(text.dropFirst()), n >= 0 { return .minus(n) }
        if let n = Int(text), n >= 0 { return n == 0 ? .unlimited : .count(n) }
        throw RunUsageError("option \(name): '\(text)' is not N, N%, +N, -N or 0")
    }

    /// `1M`, `512k`, `10M`, `1G`, or bytes (GNU's units are powers of 1024).
    static func parseSize(_ text: String, name: String) throws(RunUsageError) -> Int {
        let units: [Character: Int] = ["k": 1 << 10, "K": 1 << 10, "m": 1 << 20, "M": 1 << 20, "g": 1 << 30, "G": 1 << 30]
        var digits = Substring(text)
        var factor = 1
        if let last = digits.last, let unit = units[last] { factor = unit; digits = digits.dropLast() }
        guard let number = Double(digits), number > 0, number * Double(factor) < Double(Int.max / 2) else {
            throw RunUsageError("option \(name): '\(text)' is not a size like 1M or 512k")
        }
        return max(1, Int(number * Double(factor)))
    }

    static func parseTimeout(_ text: String) throws(RunUsageError) -> Timeout {
        if text.hasSuffix("%"), let percent = Double(text.dropLast()), percent > 0 { return .percentOfMedian(percent) }
        if let seconds = Double(text), seconds > 0 { return .seconds(seconds) }
        throw RunUsageError("option --timeout: '\(text)' is not seconds or N%")
    }

    /// `now|soon,fail|success|done=N|N%`, or the old 0, 1, 2, -1, -2.
    static func parseHalt(_ text: String) throws(RunUsageError) -> Halt? {
        switch text {
        case "0", "never": return nil
        case "1": return Halt(when: .soon, why: .fail, threshold: .count(1))
        case "2": return Halt(when: .now, why: .fail, threshold: .count(1))
        case "-1": return Halt(when: .soon, why: .success, threshold: .count(1))
        case "-2": return Halt(when: .now, why: .success, threshold: .count(1))
        default: break
        }
        // `--halt 5%` is `soon,fail=5%`.
        if text.hasSuffix("%"), let percent = Double(text.dropLast()), percent > 0, percent <= 100 {
            return Halt(when: .soon, why: .fail, threshold: .percent(percent))
        }
        let parts = text.split(separator: ",", maxSplits: 1).map(String.init)
        guard parts.count == 2, let when = Halt.When(rawValue: parts[0]) else {
            throw RunUsageError("option --halt: '\(text)' is not now|soon,fail|success|done=N|N%")
        }
        let condition = parts[1].split(separator: "=", maxSplits: 1).map(String.init)
        guard condition.count == 2 else { throw RunUsageError("option --halt: '\(text)' has no =N") }
        let why: Halt.Why
        switch condition[0] {
        case "fail": why = .fail
        case "success": why = .success
        case "done": why = .done
        default: throw RunUsageError("option --halt: '\(condition[0])' is not fail, success or done")
        }
        let amount = condition[1]
        if amount.hasSuffix("%"), let percent = Double(amount.dropLast()), percent > 0, percent <= 100 {
            return Halt(when: when, why: why, threshold: .percent(percent))
        }
        guard let count = Int(amount), count >= 1 else { throw RunUsageError("option --halt: '\(amount)' is not N or N%") }
        return Halt(when: when, why: why, threshold: .count(count))
    }

    /// Backslash escapes (`\n`, `\t`, `\0`, `\r`, `\\`) anywhere in `-d`, `--recend` and
    /// `--recstart`, as GNU reads them (`--recend 'y\n'` is `y` and a newline).
    static func unescape(_ text: String) -> String {
        guard text.contains("\\") else { return text }
        var result = ""
        var escaped = false
        for character in text {
            if escaped {
                switch character {
                case "n": result.append("\n")
                case "t": result.append("\t")
                case "0": result.append("\0")
                case "r": result.append("\r")
                case "\\": result.append("\\")
                default: result.append("\\"); result.append(character)
                }
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else {
                result.append(character)
            }
        }
        if escaped { result.append("\\") }
        return result
    }
}
