#if canImport(Glibc)
import Glibc
#endif
import WorkersCore

/// What parsing has gathered so far: the options, and what the rules applied after parsing need
/// to know was given.
struct OptionState: Sendable {
    var options = RunOptions()
    var jobsGiven = false
    var groupGiven = false
    var ttyDefaults = false
    var ungroup = false
    var lineBuffer = false
    var silent = false
    /// `--tollef` (retired in GNU: an error unless `--gnu` is given too).
    var tollef = false
    var gnuGiven = false
}

/// One of GNU parallel's options as `workers run` reads it: its names, its value, its line in
/// `--help` and what it does. The table drives the parser, `--help` and the refused set, so an
/// option is one row.
struct OptionSpec: Sendable {
    /// Whether the option takes a value, and its name in `--help`.
    enum Value: Sendable, Equatable {
        /// A switch.
        case none
        /// A value, in the same word (`-j2`, `--jobs=2`) or the next.
        case required(String)
        /// A value if one is in the same word, or the next word does not start with `-`
        /// (Getopt::Long's `:s`).
        case optional(String)
        /// A number if one is in the same word or is the next word (Getopt::Long's `:f`).
        case optionalNumber(String)

        /// Whether the option takes a value at all.
        var takesValue: Bool { if case .none = self { false } else { true } }
        /// Whether its value is a number (and so, in a bundle, only the digits that follow).
        var isNumber: Bool { if case .optionalNumber = self { true } else { false } }
    }

    /// Where the option's line goes in `--help`.
    enum Section: String, CaseIterable, Sendable {
        case input = "INPUT"
        case command = "COMMAND AND REPLACEMENT STRINGS"
        case output = "OUTPUT"
        case scheduling = "SCHEDULING"
        case pipe = "PIPE"
        case log = "JOB LOG, RETRIES, TIME-OUTS"
        case remote = "REMOTE HOSTS (one agent a host, over one ssh or srun)"
        case semaphore = "SEMAPHORE (GNU's sem)"
        case other = "OTHER"
    }

    /// Whether `workers run` does it.
    enum Support: Sendable, Equatable {
        case supported
        /// Named and refused with status 255; the text says why or what to use.
        case refused(String?)
    }

    /// GNU's names, without dashes, primary first: one character is a short option (`-k`), more a
    /// long one (`--keep-order`).
    let names: [String]
    let value: Value
    let section: Section
    /// Its text in `--help` (nil: not listed).
    let help: String?
    let support: Support
    let apply: @Sendable (inout OptionState, String?) throws(RunUsageError) -> Void

    /// A supported option: `names` as GNU writes them (`keep-order|keeporder|k`).
    init(_ names: String, _ value: Value = .none, _ section: Section, _ help: String?, support: Support = .supported,
         _ apply: @escaping @Sendable (inout OptionState, String?) throws(RunUsageError) -> Void) {
        self.names = names.split(separator: "|").map(String.init)
        self.value = value
        self.section = section
        self.help = help
        self.support = support
        self.apply = apply
    }

    /// A row GNU has and `workers run` refuses by name.
    static func refused(_ names: String, _ value: Value = .none, _ why: String? = nil) -> OptionSpec {
        OptionSpec(names, value, .other, nil, support: .refused(why)) { _, _ in }
    }

    /// An option GNU has retired: GNU's error (its whole list of retired options), status 255.
    static func retired(_ names: String, _ value: Value = .none) -> OptionSpec {
        OptionSpec(names, value, .other, nil) { _, _ throws(RunUsageError) in
            throw .gnu(lines: [
                "-g has been retired. Use --group.", "-B has been retired. Use --bf.", "-T has been retired. Use --tty.",
                "-U has been retired. Use --er.", "-W has been retired. Use --wd.", "-Y has been retired. Use --shebang.",
                "-H has been retired. Use --halt.", "--sql has been retired. Use --sqlmaster.", "--ctrlc has been retired.",
                "--noctrlc has been retired.",
            ], code: .unsupportedOption)
        }
    }

    /// How the option is written: `-k`, `--keep-order`.
    static func spelled(_ name: String) -> String { name.count == 1 ? "-" + name : "--" + name }

    /// The option's primary spelling: its first long name, or its short one.
    var primary: String { Self.spelled(names.first { $0.count > 1 } ?? names[0]) }

    /// Its left column in `--help`: the short names, then the first long name, then the value.
    var synopsis: String {
        let shorts = names.filter { $0.count == 1 }.map(Self.spelled)
        let long = names.first { $0.count > 1 }.map(Self.spelled)
        let spellings = (shorts + (long.map { [$0] } ?? [])).joined(separator: ", ")
        switch value {
        case .none: return spellings
        case .required(let name): return spellings + " " + name
        case .optional(let name), .optionalNumber(let name): return spellings + "[" + (long == nil ? "" : "=") + name + "]"
        }
    }
}

extension OptionSpec {
    /// A switch that sets something.
    static func flag(_ names: String, _ section: Section, _ help: String?,
                     _ set: @escaping @Sendable (inout OptionState) -> Void) -> OptionSpec {
        OptionSpec(names, .none, section, help) { state, _ in set(&state) }
    }

    /// An option with a value.
    static func value(_ names: String, _ metavariable: String, _ section: Section, _ help: String?,
                      _ set: @escaping @Sendable (inout OptionState, String) throws(RunUsageError) -> Void) -> OptionSpec {
        OptionSpec(names, .required(metavariable), section, help) { (state, value) throws(RunUsageError) in
            try set(&state, value ?? "")
        }
    }
}

/// A whole number of at least `minimum`, or an error naming `name`.
func wholeNumber(_ name: String, _ text: String, minimum: Int) throws(RunUsageError) -> Int {
    guard let number = Int(text), number >= minimum else {
        throw RunUsageError("option \(name): '\(text)' is not a whole number of at least \(minimum)", code: .invalidValue)
    }
    return number
}

extension RunOptions {
    /// Every option GNU parallel 20221122 has (so abbreviations resolve as GNU's do), and the few
    /// `workers run` adds, in `--help` order.
    static let table: [OptionSpec] = [
        // Input.
        .value("arg-file|argfile|a", "FILE", .input, "read inputs from FILE (- is stdin); several -a are crossed, or paired with --link") { state, file in
            state.options.sources.append(.file(file)); state.options.linked.append(false)
        },
        .flag("link|xapply", .input, "pair the input sources, the shorter ones wrapping, instead of crossing them") { $0.options.link = true },
        .flag("null|0", .input, "inputs end with NUL") { $0.options.nullSeparated = true },
        .value("delimiter|d", "DELIM", .input, "inputs end with DELIM (\\n, \\t, \\0 allowed), also splitting ::: values") { state, text in
            state.options.delimiter = RunOptions.unescape(text)
        },
        .value("col-sep|colsep|C", "REGEX", .input, "split each input into columns {1} {2} …") { $0.options.columnSeparator = $1 },
        .flag("csv", .input, "inputs are CSV rows (quoted fields, doubled quotes, newlines), split at --colsep (default ,)") { $0.options.csv = true },
        .value("trim", "n|l|r|lr", .input, "trim white space around inputs (default: none; with --colsep, lr)") { (state, text) throws(RunUsageError) in
            switch text {
            case "n": state.options.trim = RunOptions.Trim.none
            case "l": state.options.trim = .left
            case "r": state.options.trim = .right
            case "lr", "rl": state.options.trim = .both
            default: throw .gnu("--trim must be one of: r l rl lr.", code: .invalidValue)
            }
        },
        .value("header", ":|N|REGEXP", .input, "the first line (split on tabs or --colsep), or each source's first value, names the columns: {name}; with --pipe, the lines (N, or what REGEXP matches) that start the input start each block; 0: only file sources' names") { state, text in
            if text == ":" {
                state.options.header = .lines(1)
            } else if let lines = Int(text), lines >= 0 {
                state.options.header = lines == 0 ? .fileNamesOnly : .lines(lines)
            } else {
                state.options.header = .pattern(text)
            }
        },
        .value("E", "STR", .input, "input ends at a value equal to STR") { $0.options.endOfFile = $1 },
        OptionSpec("eof|e", .optional("STR"), .input, "the same; with no STR, no end-of-input value") { state, value in
            state.options.endOfFile = value.flatMap { $0.isEmpty ? nil : $0 }
        },
        .flag("no-run-if-empty|norunifempty|r", .input, "blank input values are skipped") { $0.options.skipBlankInputs = true },
        .value("arg-sep|argsep", "SEP", .input, "use SEP instead of :::") { (state, text) throws(RunUsageError) in
            guard !text.isEmpty else { throw RunUsageError("option --arg-sep needs a non-empty string", code: .missingValue) }
            state.options.argumentSeparator = text
        },
        .value("arg-file-sep|argfilesep", "SEP", .input, "use SEP instead of ::::") { (state, text) throws(RunUsageError) in
            guard !text.isEmpty else { throw RunUsageError("option --arg-file-sep needs a non-empty string", code: .missingValue) }
            state.options.argumentFileSeparator = text
        },
        .flag("shuf", .input, "run the jobs in random order (reads all input first)") { $0.options.shuffle = true },

        // The command and its replacement strings.
        .value("I", "STR", .command, "use STR instead of {}") { (state, text) throws(RunUsageError) in
            guard !text.isEmpty else { throw RunUsageError("option -I needs a non-empty string", code: .missingValue) }
            state.options.replacement = text
        },
        OptionSpec("replace|i", .optional("STR"), .command, "the same, STR defaulting to {} (xargs' -i)") { state, value in
            state.options.replacement = value.flatMap { $0.isEmpty ? nil : $0 } ?? "{}"
        },
        .value("rpl", "'TAG CODE'", .command, "define TAG as the Perl CODE, as {= CODE =}; a (group) in TAG is $$1 in CODE") { state, text in
            state.options.replacementShorthands.append(text)
        },
        .value("filter", "EXPR", .command, "run only the jobs for which the Perl EXPR, its replacement strings filled in, is true (the others count as failed, as GNU's)") { state, text in
            state.options.filters.append(text)
        },
        .flag("plus", .command, "GNU's extra replacement strings: {..} {+.} {%SUFFIX} {#PREFIX} {/A/B} {:N:M} {##} {0#} …") { $0.options.plus = true },
        .value("extensionreplace|er", "STR", .command, "use STR instead of {.}") { state, text in
            state.options.replacementShorthands.append(text + " " + CommandBuilder.Modifier.noExtension.perl)
        },
        .value("basenamereplace|bnr", "STR", .command, "use STR instead of {/}") { state, text in
            state.options.replacementShorthands.append(text + " " + CommandBuilder.Modifier.basename.perl)
        },
        .value("dirnamereplace|dnr", "STR", .command, "use STR instead of {//}") { state, text in
            state.options.replacementShorthands.append(text + " " + CommandBuilder.Modifier.dirname.perl)
        },
        .value("basenameextensionreplace|bner", "STR", .command, "use STR instead of {/.}") { state, text in
            state.options.replacementShorthands.append(text + " " + CommandBuilder.Modifier.basenameNoExtension.perl)
        },
        .value("seqreplace", "STR", .command, "use STR instead of {#}") { state, text in
            state.options.replacementShorthands.append(text + " 1 $_=$job->seq()")
        },
        .value("slotreplace", "STR", .command, "use STR instead of {%}") { state, text in
            state.options.replacementShorthands.append(text + " 1 $_=$job->slot()")
        },
        .value("max-replace-args|maxreplaceargs|N", "N", .command, "N inputs per job ({1}…{N}); -N0: a job per input, none on its line") { (state, text) throws(RunUsageError) in
            state.options.argumentsPerJob = try wholeNumber("-N", text, minimum: 0)
            state.options.repeatsContext = true
        },
        .value("max-args|maxargs|n", "N", .command, "the same as -N; with -X or -m, at most N inputs per job") { (state, text) throws(RunUsageError) in
            state.options.argumentsPerJob = try wholeNumber("-n", text, minimum: 0)
        },
        .value("L", "N", .command, "N lines per job, a line ending in a blank going on with the next (-L0: as -N0)") { (state, text) throws(RunUsageError) in
            state.options.argumentsPerJob = try wholeNumber("-L", text, minimum: 0)
            state.options.joinContinuedLines = true
            state.options.repeatsContext = true
        },
        OptionSpec("max-lines|maxlines|l", .optionalNumber("N"), .command, "the same, N defaulting to 1") { (state, value) throws(RunUsageError) in
            state.options.argumentsPerJob = try value.map { (text) throws(RunUsageError) in
                // GNU: `-l -0` is -l with its optional number taken by -0, which still counts.
                if text == "-0" {
                    state.options.nullSeparated = true
                    return 1
                }
                guard let number = Double(text), number >= 0 else { throw RunUsageError("option -l: '\(text)' is not a number of lines", code: .invalidValue) }
                // GNU: -l0 is -l1 (a relic of --tollef).
                return max(1, Int(number))
            } ?? 1
            state.options.joinContinuedLines = true
        },
        .flag("X", .command, "many inputs per command line, the words around {} repeated for each; spread over the slots") { $0.options.multiple = .contextReplace },
        .flag("m", .command, "many inputs per command line, side by side") { $0.options.multiple = .append },
        .flag("xargs", .command, "as -m with -j1, as xargs") { state in state.options.multiple = .append; state.options.jobs = .count(1) },
        .value("max-chars|maxchars|s", "N", .command, "the longest command line -X and -m build") { (state, text) throws(RunUsageError) in
            let length = try wholeNumber("-s", text, minimum: 1)
            // GNU warns and keeps its own limit.
            if length <= CommandLineLimit.usable {
                state.options.maxLineLength = length
                state.options.maxLineLengthGiven = true
            } else {
                state.options.warnings.append("Warning: Value for option -s should be < \(CommandLineLimit.usable).")
            }
        },
        .flag("quote|q", .command, "quote the command's words too (no shell syntax in it)") { $0.options.quoteTemplate = true },
        .flag("no-shell", .command, "ours: run the command directly, without a shell") { $0.options.noShell = true },
        .flag("shell-quote|shellquote|shell_quote", .command, "print each job's inputs shell-quoted instead of running anything") { $0.options.shellQuoteOnly = true },
        .flag("dry-run|dryrun|dr", .command, "print the commands instead of running them") { $0.options.dryRun = true },
        .value("work-dir|workdir|wd", "DIR", .command, "run the jobs in DIR (made if missing; {} allowed)") { (state, directory) throws(RunUsageError) in
            if directory == "..." {
                state.options.uniqueWorkingDirectory = true
                state.options.workingDirectory = nil
                return
            }
            state.options.workingDirectory = directory
        },
        .value("env", "NAME", .command, "carry NAME to remote jobs ('_': every variable; local jobs inherit them all)") { state, name in
            state.options.environmentNames.append(name)
        },

        // Output.
        .flag("keep-order|keeporder|k", .output, "print outputs in input order") { $0.options.keepOrder = true },
        .flag("no-keep-order|nokeeporder|nok|no-k", .output, "overrides an earlier -k") { $0.options.keepOrder = false },
        .flag("group", .output, "each job's output whole, once it ends (the default)") { state in state.ungroup = false; state.groupGiven = true },
        .flag("ungroup|u", .output, "pass output through as it comes (drops -k and --tag)") { $0.ungroup = true },
        .flag("line-buffer|line-buffered|linebuffer|linebuffered|lb", .output, "whole lines as they come, jobs mixed line by line (with -k: the first job's lines live, the others' held until they come first)") { $0.lineBuffer = true },
        .flag("tag", .output, "prefix each output line with the inputs and a TAB") { $0.options.tag = true },
        .value("tag-string|tagstring", "STR", .output, "prefix each output line with STR (replacement strings, \\t allowed)") { state, text in
            state.options.tagString = RunOptions.unquotePrintf(text); state.options.tag = true
        },
        .flag("v", .output, "print each command on stdout, before its output") { $0.options.verbose = true },
        .flag("verbose|t", .output, "print each command on stderr as it starts") { $0.options.printCommands = true },
        .flag("silent", .output, "print no commands (overrides -v and -t)") { $0.silent = true },
        .value("results|result|res", "NAME", .output, "save each job's output instead of printing it: NAME/1/<value>/{seq,stdout,stderr}; a NAME with {} names files (.err, .seq) or, ending in /, directories; NAME.csv, .tsv, .json: one table (-.csv: on stdout). With --resume, jobs with results are skipped") { (state, name) throws(RunUsageError) in
            guard !name.isEmpty else { throw RunUsageError("option --results needs a name", code: .missingValue) }
            state.options.results = name
        },
        .flag("output-as-files|outputasfiles|files", .output, "save each job's stdout in a file (in --tmpdir or $TMPDIR) and print its name") { $0.options.outputFiles = true },
        .value("tmpdir|tempdir", "DIR", .output, "buffer output in files there (default: in memory files)") { $0.options.temporaryDirectory = $1 },
        .flag("progress", .output, "a progress line on stderr") { $0.options.progress = true },
        .flag("bar", .output, "a progress bar with the time left (reads all input first)") { $0.options.bar = true },
        .flag("eta", .output, "the same") { $0.options.bar = true },
        .flag("json", .output, "ours: one JSON event per finished job, on stderr") { $0.options.json = true },

        // Scheduling.
        .value("jobs|j|max-procs|maxprocs|P", "N|N%|+N|-N|0", .scheduling, "jobs at once (default: one per CPU; 0: no limit)") { (state, text) throws(RunUsageError) in
            state.options.jobs = try RunOptions.parseJobs(text, name: "-j")
            state.jobsGiven = true
        },
        .value("delay", "SECS", .scheduling, "at least SECS between job starts (30, 1.5s, 2m, 1h30m)") { (state, text) throws(RunUsageError) in
            state.options.delay = try RunOptions.parseDuration(text, name: "--delay")
        },
        .value("load", "N|N%|FILE", .scheduling, "start no job while the 1-minute load average is above N (or N% of the CPUs; a FILE holding one is read at each start)") { (state, text) throws(RunUsageError) in
            if let load = RunOptions.parseLoad(text) {
                state.options.maximumLoad = load
            } else if fileExists(text) {
                state.options.maximumLoadFile = text
            } else {
                throw RunUsageError("option --load: '\(text)' is not a load average, N% or a file holding one", code: .invalidValue)
            }
        },
        .value("memfree", "SIZE", .scheduling, "start no job while less memory than SIZE is available (K M G T: 1024s; k m g t: 1000s)") { (state, text) throws(RunUsageError) in
            state.options.minimumFreeMemory = try RunOptions.parseSize(text, name: "--memfree")
        },
        .value("nice", "N", .scheduling, "the jobs' niceness is raised by N") { (state, text) throws(RunUsageError) in
            guard let niceness = Int32(text), (-20...19).contains(niceness) else { throw RunUsageError("option --nice: '\(text)' is not a niceness from -20 to 19", code: .invalidValue) }
            state.options.niceness = niceness
        },
        .flag("tty", .scheduling, "the jobs read the terminal; also -j1 and -u unless told otherwise") { state in state.options.openTerminal = true; state.ttyDefaults = true },
        .flag("open-tty|o", .scheduling, "the jobs read the terminal") { $0.options.openTerminal = true },
        .value("halt-on-error|haltonerror|halt", "now|soon,fail|success|done=N|N%", .scheduling, "stop the run early") { (state, text) throws(RunUsageError) in
            state.options.halt = try RunOptions.parseHalt(text)
        },
        .value("term-seq|termseq", "SIG,MS,…", .scheduling, "how jobs are stopped (default TERM,200,TERM,100,TERM,50,KILL,25)") { (state, text) throws(RunUsageError) in
            state.options.terminateSequence = try RunOptions.parseTerminateSequence(text)
        },

        // --pipe.
        .flag("pipe|spreadstdin", .pipe, "split stdin into blocks (or -N records) for the jobs' stdin") { state in
            if state.options.pipe == nil { state.options.pipe = .blocks }
        },
        .flag("pipe-part|pipepart", .pipe, "the same for a seekable file (-a FILE), cut by seeking (faster)") { $0.options.pipe = .parts },
        .value("block-size|blocksize|block|bs", "SIZE", .pipe, "bytes per block (default 1M), extended to a record end") { (state, text) throws(RunUsageError) in
            state.options.blockSizeGiven = true
            if text.hasPrefix("-") {
                // GNU's -N: N blocks per job slot (with --pipe-part; checked when the rest is known).
                let size = try RunOptions.parseSize(String(text.dropFirst()), name: "--block")
                state.options.blocksPerSlot = Double(size)
            } else {
                state.options.blockSize = try RunOptions.parseSize(text, name: "--block")
            }
        },
        .flag("tee", .pipe, "every job gets all the data (stdin, or -a FILE with --pipe-part); the ::: inputs are the jobs; -j0 unless told") { $0.options.teeInput = "-" },
        .value("recend", "STR", .pipe, "the string records end with (default \\n)") { state, text in
            state.options.recordEnd = Array(RunOptions.unescape(text).utf8); state.options.recordEndGiven = true
        },
        .value("recstart", "STR", .pipe, "the string records start with") { state, text in
            state.options.recordStart = Array(RunOptions.unescape(text).utf8)
        },
        .flag("round-robin|roundrobin|round", .pipe, "-j jobs run for the whole input, sharing its blocks") { $0.options.roundRobin = true },
        .flag("cat", .pipe, "{} is a file holding the block (removed after the job)") { $0.options.catBlocks = true },

        // The job log, retries and time-outs.
        .value("joblog|jl", "[+]FILE", .log, "GNU's 9-column job log (+ appends; - is stdout)") { state, text in
            var path = text
            if path.hasPrefix("+") { state.options.joblogAppend = true; path.removeFirst() }
            state.options.joblog = path
        },
        .flag("resume", .log, "skip the jobs the --joblog (or --results) records") { $0.options.resume = true },
        .flag("resume-failed|resumefailed", .log, "skip the jobs it records as succeeded") { $0.options.resumeFailed = true },
        .flag("retry-failed|retryfailed", .log, "run again the jobs the --joblog records as failed, with its commands") { $0.options.retryFailed = true },
        .value("retries", "N", .log, "try a failing job up to N times (0: no limit; replacement strings allowed, per job); only the last output is printed") { (state, text) throws(RunUsageError) in
            // GNU fills replacement strings in it for each job (`--retries {//}`).
            if text.contains("{") {
                state.options.retriesTemplate = text
                return
            }
            let retries = try wholeNumber("--retries", text, minimum: 0)
            state.options.retries = retries == 0 ? Int(Int32.max) : retries
        },
        .value("timeout", "SECS|N%", .log, "kill a job after SECS (30, 1.5s, 2m, 1h) or N% of the median run time") { (state, text) throws(RunUsageError) in
            state.options.timeout = try RunOptions.parseTimeout(text)
        },

        // The semaphore.
        .flag("semaphore|sem", .semaphore, "run the command once fewer than -j (default 1) commands of the --id run; in the background unless --fg") { $0.options.semaphore = true },
        .value("semaphore-name|semaphorename|id", "ID", .semaphore, "the semaphore's name (default: the terminal's)") { $0.options.semaphoreID = $1 },
        .flag("fg", .semaphore, "the command runs in the foreground and its status is ours") { $0.options.semaphoreForeground = true },
        .flag("bg", .semaphore, "in the background (the default)") { $0.options.semaphoreForeground = false },
        .flag("wait", .semaphore, "wait until every command of the semaphore has ended") { $0.options.semaphoreWait = true },
        .value("semaphore-timeout|semaphoretimeout|st", "SECS", .semaphore, "after SECS waiting, run anyway (or, SECS < 0, exit 1)") { (state, text) throws(RunUsageError) in
            guard let seconds = Double(text) else { throw RunUsageError("option --st: '\(text)' is not a number of seconds", code: .invalidValue) }
            state.options.semaphoreTimeout = seconds
        },

        // Other.
        .flag("help|h", .other, "this text") { $0.options.request = .help },
        .flag("version|V", .other, "the version, and the GNU parallel version this follows") { $0.options.request = .version },
        .value("min-version|minversion", "VERSION", .other, "exit 0 if the GNU parallel version this follows is at least VERSION, else 255") { (state, text) throws(RunUsageError) in
            state.options.request = .minimumVersion(try wholeNumber("--min-version", text, minimum: 0))
        },
        .flag("max-line-length-allowed|maxlinelengthallowed", .other, "print the longest command line a job can have") { $0.options.request = .maximumLineLength },
        .flag("number-of-cpus|numberofcpus", .other, "print the number of CPU cores (as GNU does)") { $0.options.request = .cores },
        .flag("number-of-sockets|numberofsockets", .other, "print the number of CPU sockets") { $0.options.request = .sockets },
        .flag("number-of-cores|numberofcores", .other, "print the number of CPU cores") { $0.options.request = .cores },
        .flag("number-of-threads|numberofthreads", .other, "print the number of hardware threads") { $0.options.request = .threads },
        .value("profile|J", "NAME", .other, "read options from $PARALLEL_HOME/NAME (default ~/.parallel/NAME) instead of the config files") { _, _ in },
        .flag("plain", .other, "read no profile, config file or $PARALLEL") { _ in },
        .flag("will-cite|willcite|nn|nonotice|no-notice", .other, "accepted; there is no notice") { _ in },
        .flag("gnu", .other, "accepted (and lets --tollef through, as in GNU)") { $0.gnuGiven = true },

        // Remote hosts.
        .value("sshlogin|S", "[N/]LOGIN", .remote, "run jobs on LOGIN ([user@]host[:port], or 'ssh … host'; ':' is this machine; commas for more; N/: N jobs there)") { state, text in
            state.options.sshLogins.append(text)
        },
        .value("sshloginfile|slf", "FILE", .remote, "sshlogins from FILE, a line each ('..': ~/.parallel/sshloginfile; re-read when it changes)") { state, text in
            state.options.sshLoginFiles.append(text)
        },
        .value("ssh", "CMD", .remote, "log in with CMD instead of ssh (also $PARALLEL_SSH)") { state, text in state.options.sshCommand = text },
        .value("ssh-delay|sshdelay", "SECS", .remote, "wait SECS between two ssh starts") { (state, text) throws(RunUsageError) in
            state.options.sshDelay = try RunOptions.parseDuration(text, name: "--sshdelay")
        },
        .flag("controlmaster|M", .remote, "accepted: each host already has one connection, kept for the run") { _ in },
        .flag("filter-hosts|filterhosts|filter-host", .remote, "leave out, silently, the hosts that cannot be reached") { $0.options.filterHosts = true },
        .value("transfer-file|transferfile|transfer-files|transferfiles|tf", "FILE", .remote, "send FILE to the job's host first (replacement strings allowed; relative to --workdir there)") { state, text in
            state.options.transferFiles.append(text)
        },
        .value("return", "FILE", .remote, "bring FILE back from the job's host when it ends") { state, text in state.options.returnFiles.append(text) },
        .flag("cleanup", .remote, "remove the transferred and returned files from the host") { $0.options.cleanup = true },
        .value("trc", "FILE", .remote, "--transferfile {} --return FILE --cleanup") { state, text in
            state.options.transferFiles.append("{}")
            state.options.returnFiles.append(text)
            state.options.cleanup = true
        },
        .value("basefile|bf", "FILE", .remote, "send FILE to every host once, before its first job") { state, text in state.options.baseFiles.append(text) },
        .flag("onall", .remote, "run every job on every host") { $0.options.onAll = true },
        .flag("nonall", .remote, "run the command, without input, once on every host") { $0.options.nonAll = true },
        .value("lost-after", "SECS", .remote, "ours: a host silent for SECS (default 10) is lost; its running jobs fail, and run elsewhere with --retries") { (state, text) throws(RunUsageError) in
            let seconds = try RunOptions.parseDuration(text, name: "--lost-after")
            guard seconds >= 2 * LinkWatch.interval else {
                throw RunUsageError("option --lost-after: '\(text)' is under \(Int(2 * LinkWatch.interval)) s, two heartbeats", code: .invalidValue)
            }
            state.options.lostAfter = seconds
        },
        .flag("slurm", .remote, "ours: the hosts are this Slurm allocation's nodes (an agent on each by srun; -j from SLURM_CPUS_ON_NODE)") { $0.options.slurm = true },

        // GNU's options that workers run does not have: named and refused, never ignored.
        .refused("transfer"), .refused("workdir-remote"),
        .refused("rsync-opts|rsyncopts", .required("OPTS")), .refused("hgrp|hostgrp|hostgroup|hostgroups"),
        .refused("sql", .required("DBURL")), .refused("sql-master|sqlmaster", .required("DBURL")),
        .refused("sql-worker|sqlworker", .required("DBURL")), .refused("sql-and-worker|sqlandworker", .required("DBURL")),
        .refused("tmux"), .refused("tmux-pane|tmuxpane"),
        .refused("parens", .required("PARENS")),
        .refused("memsuspend", .required("SIZE")), .refused("noswap"), .refused("limit", .required("CMD")),
        .refused("ctag"), .refused("ctag-string|ctagstring", .required("STR")), .refused("color|colour"),
        .refused("color-failed|colour-failed|colorfailed|colourfailed|color-fail|colour-fail|colorfail|colourfail|cf"),
        .refused("compress"), .refused("use-compress-program|compress-program|usecompressprogram|compressprogram", .required("PROG")),
        .refused("use-decompress-program|decompress-program|usedecompressprogram|decompressprogram", .required("PROG")),
        .refused("recordenv|record-env"), .refused("fifo"), .refused("shard", .required("EXPR")), .refused("bin", .required("EXPR")),
        .refused("group-by|groupby", .required("COL")), .refused("regexp|regex"), .refused("remove-rec-sep|removerecsep|rrs"),
        .refused("latest-line|latestline|ll"),
        .refused("block-timeout|blocktimeout|bt", .required("SECS")), .refused("skip-first-line|skipfirstline"),
        .refused("process-slot-var|processslotvar", .required("NAME")), .refused("template|tmpl", .required("FILE=REPL")),
        .refused("total-jobs|totaljobs|total", .required("N")), .refused("interactive|p"), .refused("exit|x"),
        .retired("ctrl-c|ctrlc"), .retired("no-ctrl-c|no-ctrlc|noctrlc"), .refused("embed"), .refused("shebang|hashbang"),
        .refused("shell-completion|shellcompletion", .required("SHELL")), .refused("session"), .refused("show-limits|showlimits"),
        .refused("linkinputsource|xapplyinputsource", .required("N")), .refused("citation"), .refused("bibtex"), .refused("bug"),
        OptionSpec("tollef", .none, .other, nil) { state, _ in state.tollef = true },
        .refused("use-cpus-instead-of-cores|usecpusinsteadofcores"),
        .refused("use-cores-instead-of-threads|usecoresinsteadofthreads"),
        .refused("use-sockets-instead-of-threads|usesocketsinsteadofthreads"),
        .refused("debug|D", .required("WHAT")), .retired("B", .required("X")), .retired("H", .required("N")), .retired("T"),
        .retired("U", .required("X")), .retired("W", .required("X")), .retired("Y"), .retired("g"),
        .refused("_parset", .required("X")), .refused("_pipe-means-argfiles"), .refused("_test", .required("X")),
    ]
}
