extension RunOptions {
    /// Parses `workers run`'s arguments as GNU parallel does: the profile files and `$PARALLEL`
    /// first (from `environment`), then options, the command, and input sources after `:::`,
    /// `::::`, `:::+` and `::::+`.
    ///
    /// - Throws: ``RunUsageError`` naming the option that is unknown, ambiguous, refused, given a
    ///   bad value or combined with one it excludes.
    public static func parse(_ arguments: [String], environment: OptionEnvironment = .none) throws(RunUsageError) -> RunOptions {
        let parser = OptionParser()
        let argumentSeparatorRow = table.firstIndex { $0.names.first == "arg-sep" }!
        let fileSeparatorRow = table.firstIndex { $0.names.first == "arg-file-sep" }!
        var separators = (arguments: ":::", files: "::::")
        func isSeparator(_ word: String, _ current: (arguments: String, files: String)) -> Bool {
            word == current.arguments || word == current.arguments + "+" || word == current.files || word == current.files + "+"
        }
        func separatorsAfter(_ tokens: [OptionParser.Token]) -> (arguments: String, files: String) {
            var result = separators
            for token in tokens {
                if token.row == argumentSeparatorRow, let value = token.value { result.arguments = value }
                if token.row == fileSeparatorRow, let value = token.value { result.files = value }
            }
            return result
        }
        func tokenize(_ words: [String]) throws(RunUsageError) -> (tokens: [OptionParser.Token], end: Int) {
            try parser.tokenize(words) { tokens, word in isSeparator(word, separatorsAfter(tokens)) }
        }

        let command = try tokenize(arguments)
        // Profiles and $PARALLEL come first, unless --plain; their words that are not options
        // start the command (GNU's PARALLEL="nice" puts nice before it).
        var leading: [(tokens: [OptionParser.Token], origin: String)] = []
        var commandPrefix: [String] = []
        if !command.tokens.contains(where: { parser.table[$0.row].names.first == "plain" }) {
            let profiles = command.tokens.filter { parser.table[$0.row].names.first == "profile" }.compactMap(\.value)
            for (words, origin) in [(try environment.profileWords(profiles), "a profile"),
                                    (try environment.variables["PARALLEL"].map(shellWords) ?? [], "$PARALLEL")] where !words.isEmpty {
                let read: (tokens: [OptionParser.Token], end: Int)
                do { read = try tokenize(words) } catch {
                    var error = error
                    error.description += " (in \(origin))"
                    throw error
                }
                leading.append((read.tokens, origin))
                separators = separatorsAfter(read.tokens)
                commandPrefix += words[read.end...]
            }
        }
        separators = separatorsAfter(command.tokens)

        var state = OptionState()
        for (tokens, origin) in leading + [(command.tokens, "")] {
            for token in tokens {
                let spec = parser.table[token.row]
                if case .refused(let why) = spec.support {
                    throw RunUsageError("option \(token.spelled) is not supported by workers run" + (why.map { " (\($0))" } ?? "") + (origin.isEmpty ? "" : " (in \(origin))"), code: .unsupportedOption)
                }
                do { try spec.apply(&state, token.value) } catch {
                    var error = error
                    if !origin.isEmpty { error.description += " (in \(origin))" }
                    throw error
                }
            }
        }
        if state.options.request != nil { return state.options }

        var index = command.end
        // The command, until the first source separator.
        state.options.template = commandPrefix
        while index < arguments.count, !isSeparator(arguments[index], separators) {
            state.options.template.append(arguments[index])
            index += 1
        }
        // Input sources. `:::` values are split at the input separator, as GNU splits them
        // at `$/` (a newline, or -d's).
        let valueSeparator: [UInt8] = state.options.nullSeparated ? [0] : Array((state.options.delimiter ?? "\n").utf8)
        while index < arguments.count {
            let separator = arguments[index]
            index += 1
            var values: [String] = []
            while index < arguments.count, !isSeparator(arguments[index], separators) {
                values.append(arguments[index])
                index += 1
            }
            let linked = separator.hasSuffix("+")
            if separator == separators.files || separator == separators.files + "+" {
                guard !values.isEmpty else { throw RunUsageError("\(separator) needs a file name", code: .missingValue) }
                // Every file after `::::+` is linked, as GNU links them.
                for file in values {
                    state.options.sources.append(.file(file))
                    state.options.linked.append(linked)
                }
            } else {
                state.options.sources.append(.arguments(values.flatMap { value in
                    Array(value.utf8).split(separator: valueSeparator, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
                }))
                state.options.linked.append(linked)
            }
        }
        return try state.resolved()
    }
}

extension OptionState {
    /// GNU's rules applied once every option is known, then one check per combination that
    /// cannot work, each naming its option.
    func resolved() throws(RunUsageError) -> RunOptions {
        var options = self.options
        if tollef, !gnuGiven {
            throw .gnu(lines: ["--tollef has been retired.", "Remove --tollef or use --gnu to override --tollef."], code: .unsupportedOption)
        }
        // A semaphore is a mutex unless -j says otherwise; --fg, --wait and --id imply one.
        if options.semaphoreForeground || options.semaphoreWait || options.semaphoreID != nil { options.semaphore = true }
        if options.semaphore, !jobsGiven { options.jobs = .count(1) }
        // --tty: one job at a time and output passed through, unless -j or --group say otherwise.
        var ungroup = self.ungroup
        if ttyDefaults {
            if !jobsGiven { options.jobs = .count(1) }
            if !groupGiven { ungroup = true }
        }
        if ungroup {
            options.output = .ungrouped
            options.keepOrder = false  // as GNU: -u drops -k and --tag
            options.tag = false
        } else if lineBuffer {
            options.output = .lineBuffered
        }
        if silent { options.verbose = false; options.printCommands = false }
        if options.header != nil, options.pipe == nil { options.nameFileSources() }
        if options.plus || !options.replacementShorthands.isEmpty {
            let shorthands = try ReplacementShorthands(rpl: options.replacementShorthands, plus: options.plus)
            options.template = CommandBuilder.mergingPerlWords(options.template).map(shorthands.rewrite)
            options.tagString = options.tagString.map(shorthands.rewrite)
            options.workingDirectory = options.workingDirectory.map(shorthands.rewrite)
            options.results = options.results.map(shorthands.rewrite)
            options.filters = options.filters.map(shorthands.rewrite)
            options.retriesTemplate = options.retriesTemplate.map(shorthands.rewrite)
        }
        if options.pipe != nil, options.template.isEmpty, !options.semaphore {
            throw .gnu("--pipe/--pipepart must have a command to pipe into (e.g. 'cat').", code: .missingValue)
        }
        if options.pipe != nil, options.argumentsPerJob == 0 {
            throw RunUsageError("option -N0 cannot be used with --pipe or --pipe-part", code: .conflictingOptions)
        }
        if options.pipe == .parts, options.argumentsPerJob != nil {
            throw RunUsageError("option --pipe-part cuts by --block; -N is not supported with it", code: .unsupportedOption)
        }
        if options.multiple != nil, options.pipe != nil {
            throw RunUsageError("option -X/-m cannot be used with --pipe", code: .conflictingOptions)
        }
        if options.csv {
            guard options.pipe == nil else { throw RunUsageError("option --csv cannot be used with --pipe", code: .conflictingOptions) }
            if options.columnSeparator == nil { options.columnSeparator = "," }
            if options.trim == nil { options.trim = RunOptions.Trim.none }
        }
        if options.header != nil, options.pipe == nil {
            // GNU splits the header (and so the values) on tabs unless --colsep says otherwise.
            if options.columnSeparator == nil { options.columnSeparator = "\t" }
        }
        if options.catBlocks, options.pipe == nil || options.roundRobin {
            throw RunUsageError("option --cat needs --pipe or --pipe-part (and is not supported with --round-robin)", code: .unsupportedOption)
        }
        if options.teeInput != nil {
            guard options.pipe != nil else { throw RunUsageError("option --tee needs --pipe or --pipe-part", code: .conflictingOptions) }
            // The data: the first file source (-a FILE), else standard input; the rest are the
            // jobs' arguments. All jobs run at once, so -j is 0 unless given (GNU's).
            if let index = options.sources.firstIndex(where: { if case .file = $0 { true } else { false } }),
               case .file(let path) = options.sources[index] {
                options.teeInput = path
                options.sources.remove(at: index)
                options.linked.remove(at: index)
            } else if options.pipe == .parts {
                throw RunUsageError("option --pipe-part --tee needs one seekable file (-a FILE)", code: .conflictingOptions)
            }
            if !jobsGiven { options.jobs = .unlimited }
        }
        if options.pipe != nil, options.teeInput == nil {
            // GNU ignores `:::` values beside --pipe and --pipe-part ({} is then empty).
            let kept = options.sources.indices.filter { if case .file = options.sources[$0] { true } else { false } }
            options.sources = kept.map { options.sources[$0] }
            options.linked = kept.map { options.linked[$0] }
        }
        if options.roundRobin, options.pipe == nil {
            throw RunUsageError("option --round-robin needs --pipe or --pipe-part", code: .conflictingOptions)
        }
        if options.pipe == .parts {
            // GNU: ten blocks a job slot unless --block says otherwise; one with --round-robin,
            // which is then plain --pipe-part.
            if options.roundRobin {
                options.blocksPerSlot = 1
                options.roundRobin = false
            } else if !options.blockSizeGiven {
                options.blocksPerSlot = 10
            }
        } else if options.blocksPerSlot != nil {
            throw RunUsageError("option --block: a negative size (blocks per job slot) needs --pipe-part", code: .conflictingOptions)
        }
        if options.joinContinuedLines, options.pipe != nil {
            // GNU: with --pipe, -L N and -l N make records of N lines (blocks hold whole ones).
            guard options.pipe == .blocks else { throw RunUsageError("option -L with --pipe-part is not supported by workers run (use --pipe)", code: .unsupportedOption) }
            options.linesPerRecord = max(1, options.argumentsPerJob ?? 1)
            options.argumentsPerJob = nil
            options.joinContinuedLines = false
        }
        if options.header?.readsInput == true, options.pipe == .parts {
            throw RunUsageError("option --header with --pipe-part is not supported by workers run (use --pipe)", code: .unsupportedOption)
        }
        if options.remote, options.pipe != nil || options.roundRobin || options.teeInput != nil || options.semaphore {
            let what = options.semaphore ? "--semaphore" : options.roundRobin ? "--round-robin" : options.teeInput != nil ? "--tee" : options.pipe == .parts ? "--pipe-part" : "--pipe"
            throw RunUsageError("option \(what) with remote hosts (-S, --slf, --slurm) is not supported by workers run yet", code: .unsupportedOption)
        }
        if options.onAll || options.nonAll, !options.remote {
            throw RunUsageError("option --\(options.nonAll ? "nonall" : "onall") needs hosts (-S, --slf or --slurm)", code: .conflictingOptions)
        }
        if options.retryFailed, options.joblog == nil {
            throw RunUsageError("option --retry-failed needs --joblog", code: .conflictingOptions)
        }
        if options.resume || options.resumeFailed, options.joblog == nil, options.results == nil {
            throw RunUsageError("option --resume and --resume-failed need --joblog or --results", code: .conflictingOptions)
        }
        return options
    }
}

extension RunOptions {
    /// `--header` without `--pipe`: a file source's name is a replacement string for its values,
    /// `{FILE}` and `{FILE/}` `{FILE//}` `{FILE.}` `{FILE/.}` `{=FILE perl =}` becoming `{N…}` for
    /// source N, in every option that takes replacement strings (GNU's `set_input_source_header`,
    /// one file after another, before `--plus` and `--rpl` are read).
    mutating func nameFileSources() {
        for (index, source) in sources.enumerated() {
            guard case .file(let path) = source else { continue }
            let position = String(index + 1)
            func renamed(_ text: String) -> String {
                var text = text
                for suffix in ["", "/", "//", ".", "/."] {
                    text = text.replacing("{" + path + suffix + "}", with: "{" + position + suffix + "}")
                }
                return text.replacing("{=" + path, with: "{=" + position)
            }
            template = template.map(renamed)
            tagString = tagString.map(renamed)
            workingDirectory = workingDirectory.map(renamed)
            results = results.map(renamed)
            filters = filters.map(renamed)
            retriesTemplate = retriesTemplate.map(renamed)
        }
    }
}
