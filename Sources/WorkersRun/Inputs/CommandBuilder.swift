/// Turns a job's arguments into the command GNU parallel would run. Pure, except for `{= perl =}`
/// replacement strings, whose values come from the run's one ``PerlEvaluator``.
///
/// The template is shell code: its words are joined with spaces and run by a shell. Every
/// substituted argument is shell-quoted, unless the command's first word holds a replacement string;
/// `-q` quotes the template's words too. With no replacement string in the template, ` {}` is
/// appended. With `--no-shell`, the words are the program and its arguments, with no shell at all.
public struct CommandBuilder {
    let template: [String]
    let replacement: String
    let quoteTemplate: Bool
    let noShell: Bool
    let contextReplace: Bool
    /// `--header`: column and source names, each to its position (from 1), for `{name}`.
    let names: [String: Int]
    /// Evaluates `{= perl =}`; `nil` when no option holds one.
    let perl: PerlEvaluator?

    /// A builder for the template, replacement string and quoting options in `options`, with
    /// `names` (from `--header`) usable as `{name}`, `{name.}`, `{name/}`, `{name//}`, `{name/.}`.
    ///
    /// - Throws: ``RunUsageError`` when a `{= perl =}` expression does not compile or perl cannot
    ///   be started.
    public init(options: RunOptions, names: [String: Int] = [:]) throws(RunUsageError) {
        replacement = options.replacement
        quoteTemplate = options.quoteTemplate
        noShell = options.noShell
        contextReplace = options.multiple == .contextReplace || (options.repeatsContext && options.multiple == nil)
        self.names = names
        // GNU keeps `{=`, the expression and `=}` one word when the shell split them.
        let words = Self.mergingPerlWords(options.template)
        if options.pipe == nil, options.argumentsPerJob != 0, !words.isEmpty,
           !words.contains(where: { Self.hasReplacement($0, replacement: options.replacement, names: names) }) {
            template = words + [options.replacement]
        } else {
            template = words
        }
        let texts = template + [options.tagString, options.workingDirectory, options.results, options.retriesTemplate].compactMap { $0 } + options.filters
        let codes = texts.flatMap { Self.perlCodes(in: $0, replacement: options.replacement, names: names) }
        perl = codes.isEmpty && options.filters.isEmpty ? nil : try PerlEvaluator(codes: codes)
    }

    /// Whether an expression asks for `total_jobs()`, which needs all input read first.
    var needsTotal: Bool { perl?.mentionsTotal ?? false }

    /// What one job needs to fill its template.
    public struct Job: Sendable {
        /// The job's inputs (one per source, or `-N` of them).
        public var arguments: [String]
        /// The job's sequence number, from 1 (`{#}`).
        public var sequence: Int
        /// The job's slot, from 1 (`{%}`).
        public var slot: Int
        /// Context replace: the input that `{}` and `{= … =}` stand for in this copy of a word.
        var only: Int?

        /// A job with these inputs, sequence number and slot.
        public init(arguments: [String], sequence: Int, slot: Int) {
            self.arguments = arguments
            self.sequence = sequence
            self.slot = slot
        }
    }

    /// The shell command line for `job` (shell mode; for `--dry-run` in both modes).
    public func commandLine(for job: Job) -> String {
        guard !template.isEmpty else {
            // No command: each input line is a command of its own.
            return job.arguments.joined(separator: " ")
        }
        if noShell { return argv(for: job).map(shellQuote).joined(separator: " ") }
        let quoteValues = !commandWordHasReplacement
        // -X, -N, -L repeat the words around a replacement string, and GNU's words are the
        // command line's, so a quoted 'echo {} | wc -c' repeats only `{}`.
        let words = contextReplace && !quoteTemplate ? template.flatMap { Self.splitKeepingPerl($0) } : template
        return words.map { word in
            fillRepeating(word, job: job) { one in
                quoteTemplate ? quoteOutsideReplacements(word, job: one) : substitute(word, job: one) { quoteValues ? shellQuote($0) : $0 }
            }
        }.joined(separator: " ")
    }

    /// `text` filled for `job`, unquoted (`--tagstring`): under context replace, each word with
    /// a `{}` is repeated per input, as in the command.
    func fillText(_ text: String, job: Job) -> String {
        guard contextReplace else { return substitute(text, job: job) { $0 } }
        return Self.splitKeepingPerl(text).map { word in fillRepeating(word, job: job) { substitute(word, job: $0) { $0 } } }
            .joined(separator: " ")
    }

    /// GNU's context replace: a word holding a replacement string for all inputs (`{}`, `{.}`,
    /// `{= … =}`) is filled once per input, each copy with that input alone (`pre-{}-post` →
    /// `pre-a-post pre-b-post`); positional ones (`{2}`) still see every input.
    private func fillRepeating(_ word: String, job: Job, fill: (Job) -> String) -> String {
        guard contextReplace, job.arguments.count > 1, Self.hasReplacementForAll(word, replacement: replacement, names: names) else {
            return fill(job)
        }
        return job.arguments.indices.map { index in
            var one = job
            one.only = index
            return fill(one)
        }.joined(separator: " ")
    }

    /// The program and arguments for `job` in `--no-shell` mode: a word that is exactly `{}`
    /// becomes one argument per input; anything else is one argument with values spliced in.
    public func argv(for job: Job) -> [String] {
        if template.isEmpty { return job.arguments }
        return template.flatMap { word -> [String] in
            if word == replacement { return job.arguments }
            return [substitute(word, job: job) { $0 }]
        }
    }

    // MARK: Replacement strings

    /// A replacement string found in a word.
    enum Token: Equatable {
        case all(Modifier)
        case position(Int, Modifier)
        case sequence
        case slot
        /// `{= code =}`, or `{=N code =}` for input N alone.
        case perl(code: String, position: Int?)
    }

    enum Modifier: String, Equatable {
        case none = "", noExtension = ".", basename = "/", dirname = "//", basenameNoExtension = "/."

        /// The modifier as GNU defines it in Perl (for `--extensionreplace` and its siblings).
        var perl: String {
            switch self {
            case .none: ""
            case .noExtension: #"s:\.[^/.]*$::"#
            case .basename: "s:.*/::"
            case .dirname: #"$_ = ::dirname($_);"#
            case .basenameNoExtension: #"s:.*/::; s:\.[^/.]*$::;"#
            }
        }
    }

    /// Replaces every replacement string in `word`; `render` quotes (or not) each value.
    func substitute(_ word: String, job: Job, render: (String) -> String) -> String {
        var out = ""
        var rest = Substring(word)
        while !rest.isEmpty {
            if let (token, length) = Self.token(at: rest, replacement: replacement, names: names) {
                out += value(token, job: job, render: render)
                rest = rest.dropFirst(length)
            } else {
                out.append(rest.removeFirst())
            }
        }
        return out
    }

    private func value(_ token: Token, job: Job, render: (String) -> String) -> String {
        switch token {
        case .sequence: return String(job.sequence)
        case .slot: return String(job.slot)
        case .all(let modifier):
            if let only = job.only { return render(Self.apply(modifier, to: job.arguments[only])) }
            return job.arguments.map { render(Self.apply(modifier, to: $0)) }.joined(separator: " ")
        case .position(let n, let modifier):
            // A position past the inputs is nothing at all (GNU: `echo c-`, not `echo c-''`).
            let index = n < 0 ? job.arguments.count + n : n - 1
            guard index >= 0, index < job.arguments.count else { return "" }
            return render(Self.apply(modifier, to: job.arguments[index]))
        case .perl(let code, let position):
            guard let perl else { return "" }
            func evaluated(_ index: Int) -> String {
                // GNU evaluates a job with no inputs once, with `$_` empty.
                let start = index < job.arguments.count ? job.arguments[index] : ""
                let value = perl.value(of: code, input: index, value: start, job: job)
                return value.unquoted ? value.text : render(value.text)
            }
            guard let n = position else {
                if let only = job.only { return evaluated(only) }
                if job.arguments.isEmpty { return evaluated(0) }
                return job.arguments.indices.map(evaluated).joined(separator: " ")
            }
            let index = n < 0 ? job.arguments.count + n : n - 1
            guard index >= 0, index < job.arguments.count else { return "" }
            return evaluated(index)
        }
    }

    /// The token at the start of `text` and its length in characters, if one is there.
    static func token(at text: Substring, replacement: String, names: [String: Int] = [:]) -> (Token, Int)? {
        if text.hasPrefix(replacement) { return (.all(.none), replacement.count) }
        if text.hasPrefix("{=") { return perlToken(at: text, names: names) }
        guard text.first == "{", let close = text.firstIndex(of: "}") else { return nil }
        let inside = text[text.index(after: text.startIndex)..<close]
        let length = inside.count + 2
        switch inside {
        case "#": return (.sequence, length)
        case "%": return (.slot, length)
        default: break
        }
        if !names.isEmpty {
            if let position = names[String(inside)] { return (.position(position, .none), length) }
            for modifier in [Modifier.basenameNoExtension, .dirname, .basename, .noExtension] where inside.hasSuffix(modifier.rawValue) {
                if let position = names[String(inside.dropLast(modifier.rawValue.count))] { return (.position(position, modifier), length) }
            }
        }
        // `{-1}` is the last input, `{-2}` the one before it (GNU's negative positions).
        let negative = inside.first == "-"
        let digits = inside.dropFirst(negative ? 1 : 0).prefix { $0.isASCII && $0.isNumber }
        var rest = inside.dropFirst(digits.count + (negative ? 1 : 0))
        // GNU allows blanks between the number and the rest (`{1\n }`, `{2 .}`).
        if !digits.isEmpty { rest = rest.drop { $0.isWhitespace } }
        guard let modifier = Modifier(rawValue: String(rest)) else { return nil }
        if digits.isEmpty {
            // `{.}` `{/}` `{//}` `{/.}`; a bare `{}` only when it is the replacement string.
            guard modifier != .none, !negative else { return nil }
            return (.all(modifier), length)
        }
        guard let n = Int(digits), n >= 1 else { return nil }
        return (.position(negative ? -n : n, modifier), length)
    }

    /// Whether `word` holds a replacement string that stands for every input (not `{2}`, `{#}`).
    static func hasReplacementForAll(_ word: String, replacement: String, names: [String: Int] = [:]) -> Bool {
        var rest = Substring(word)
        while !rest.isEmpty {
            if let (token, length) = token(at: rest, replacement: replacement, names: names) {
                switch token {
                case .all, .perl(_, nil): return true
                default: rest = rest.dropFirst(length)
                }
            } else {
                rest = rest.dropFirst()
            }
        }
        return false
    }

    static func hasReplacement(_ word: String, replacement: String, names: [String: Int] = [:]) -> Bool {
        var rest = Substring(word)
        while !rest.isEmpty {
            if token(at: rest, replacement: replacement, names: names) != nil { return true }
            rest = rest.dropFirst()
        }
        return false
    }

    /// GNU's rule (`"@command" =~ /^[^ \t\n=]*\257</`): when the command's first word — up to a
    /// blank or `=` — holds a replacement string (`{}`, `e{}`, `{2}`), the input is part of the
    /// command, so it is not quoted; `V={} cmd` and `echo {}` quote it.
    var commandWordHasReplacement: Bool {
        // A `{= … =}` counts as one piece, whatever it holds (GNU has replaced it by then).
        var rest = Substring(template.joined(separator: " "))
        while let next = rest.first, next != " ", next != "\t", next != "\n", next != "=" {
            if Self.token(at: rest, replacement: replacement, names: names) != nil { return true }
            rest = rest.dropFirst()
        }
        return false
    }

    /// `{.}`, `{/}`, `{//}`, `{/.}` as GNU computes them.
    static func apply(_ modifier: Modifier, to value: String) -> String {
        switch modifier {
        case .none: return value
        case .noExtension: return removeExtension(value)
        case .basename: return basename(value)
        case .dirname: return dirname(value)
        case .basenameNoExtension: return removeExtension(basename(value))
        }
    }

    static func basename(_ path: String) -> String {
        guard let slash = path.utf8.lastIndex(of: slash) else { return path }
        return String(path[path.utf8.index(after: slash)...])
    }

    /// Perl's `File::Basename::dirname`, which GNU's `{//}` is: trailing slashes do not count and
    /// repeated ones collapse (`a/` → `.`, `a//b` → `a`, `/` → `/`, `a` → `.`).
    /// Paths are searched as bytes, as Perl does, so a long input costs one pass.
    static func dirname(_ path: String) -> String {
        func split(_ path: Substring) -> (base: Substring, directory: Substring) {
            guard let slash = path.utf8.lastIndex(of: slash) else { return (path, "./") }
            return (path[path.utf8.index(after: slash)...], path[...slash])
        }
        func stripTrailingSlashes(_ path: Substring) -> Substring {
            var path = path
            while path.utf8.count > 1, path.utf8.last == slash { path = path[..<path.utf8.index(before: path.endIndex)] }
            return path
        }
        var (base, directory) = split(Substring(path))
        directory = stripTrailingSlashes(directory)
        if base.isEmpty {
            (base, directory) = split(directory)
            directory = stripTrailingSlashes(directory)
        }
        return String(directory)
    }

    /// GNU's `{.}`, `s:\.[^/.]*$::`: drops the last `.ext` when it is in the last path component
    /// (`dir.x/file.tar.gz` → `dir.x/file.tar`, `sub.dir/bar` unchanged, `.hidden` → empty).
    static func removeExtension(_ path: String) -> String {
        guard let dot = path.utf8.lastIndex(of: UInt8(ascii: ".")), !path.utf8[dot...].contains(slash) else { return path }
        return String(path[..<dot])
    }

    private static let slash = UInt8(ascii: "/")

    /// With `-q`: the template word's own text quoted, the substituted values as they are.
    private func quoteOutsideReplacements(_ word: String, job: Job) -> String {
        // GNU fills the word, then quotes it whole (`'sleep 3 & wait'`); only several inputs
        // for one `{}` are separate words.
        if job.arguments.count <= 1 || job.only != nil || !Self.hasReplacementForAll(word, replacement: replacement, names: names) {
            return shellQuote(substitute(word, job: job) { $0 })
        }
        var out = ""
        var literal = ""
        var rest = Substring(word)
        let quoteValues = !commandWordHasReplacement
        while !rest.isEmpty {
            if let (token, length) = Self.token(at: rest, replacement: replacement, names: names) {
                if !literal.isEmpty { out += shellQuote(literal); literal = "" }
                out += value(token, job: job) { quoteValues ? shellQuote($0) : $0 }
                rest = rest.dropFirst(length)
            } else {
                literal.append(rest.removeFirst())
            }
        }
        if !literal.isEmpty { out += shellQuote(literal) }
        return out.isEmpty ? "''" : out
    }
}
