/// GNU parallel's options read as GNU reads them: Perl's Getopt::Long with `bundling` and
/// `require_order`, over ``RunOptions/table``. Pure.
///
/// - Short options bundle: `-kv`, `-kj2`, `-kj 2`; a short option with a value takes the rest of
///   the word, or the next word.
/// - Long options may be abbreviated to a prefix that names one option (`--line-buf`), are
///   matched without regard to case, and take a value as `--jobs 2` or `--jobs=2`.
/// - An optional value (`-i`, `-e`, `-l`) is taken from the same word, or from the next word when
///   that does not start with `-` (for `-l`, when it is a number).
/// - Options end at `--`, at an input separator, or at the first word that is not one.
struct OptionParser {
    /// One option as given: its row in the table, its value, and how it was written.
    struct Token {
        var row: Int
        var value: String?
        var spelled: String
    }

    let table: [OptionSpec]
    private let shortNames: [Character: Int]
    private let longNames: [(name: String, row: Int)]

    init(table: [OptionSpec] = RunOptions.table) {
        self.table = table
        var shorts: [Character: Int] = [:]
        var longs: [(String, Int)] = []
        for (row, spec) in table.enumerated() {
            for name in spec.names {
                if name.count == 1 { shorts[name.first!] = row } else { longs.append((name.lowercased(), row)) }
            }
        }
        shortNames = shorts
        longNames = longs
    }

    /// The options at the front of `words`, and the index of the first word after them (the
    /// command's, or a separator's). `isSeparator` says which words start input sources; it is
    /// asked again after every `--arg-sep`/`--arg-file-sep`, which change them.
    func tokenize(_ words: [String], isSeparator: ([Token], String) -> Bool) throws(RunUsageError) -> (tokens: [Token], end: Int) {
        var tokens: [Token] = []
        var index = 0
        // A value from the word after the option, when its kind takes one from there: always
        // (required), unless it starts with `-` (optional), if it is a number (optional number).
        func nextWord(for kind: OptionSpec.Value, spelled: String) throws(RunUsageError) -> String? {
            let next = index + 1 < words.count ? words[index + 1] : nil
            switch kind {
            case .none: return nil
            case .required: guard next != nil else { throw RunUsageError("option \(spelled) needs a value", code: .missingValue) }
            case .optional: guard let next, !next.hasPrefix("-") else { return nil }
            case .optionalNumber: guard let next, Double(next) != nil else { return nil }
            }
            index += 1
            return words[index]
        }
        while index < words.count {
            let word = words[index]
            if isSeparator(tokens, word) { break }
            if word == "--" { index += 1; break }
            guard word.hasPrefix("-"), word.count > 1 else { break }
            if word.hasPrefix("--") {
                let body = word.dropFirst(2)
                let name = body.firstIndex(of: "=").map { String(body[..<$0]) } ?? String(body)
                let inline = body.firstIndex(of: "=").map { String(body[body.index(after: $0)...]) }
                let row = try longRow(name, spelled: "--" + name)
                let spelled = OptionSpec.spelled(table[row].names.first { $0.count > 1 } ?? name)
                if !table[row].value.takesValue, inline != nil { throw RunUsageError("option \(spelled) does not take a value", code: .invalidValue) }
                let value = if let inline { inline } else { try nextWord(for: table[row].value, spelled: spelled) }
                tokens.append(Token(row: row, value: value, spelled: spelled))
            } else {
                // A bundle of short options.
                var rest = Substring(word.dropFirst())
                while let character = rest.first {
                    rest = rest.dropFirst()
                    guard let row = shortNames[character] else {
                        throw RunUsageError(word.count > 2 ? "unknown option -\(character) (in \(word))" : "unknown option \(word)", code: .unknownOption)
                    }
                    let spelled = "-" + String(character)
                    // A value takes the rest of the bundle (an optional number only its digits),
                    // else, at the bundle's end, the next word.
                    let kind = table[row].value
                    let inBundle = kind.isNumber ? rest.prefix { $0.isNumber || $0 == "." } : kind.takesValue ? rest : ""
                    rest = rest.dropFirst(inBundle.count)
                    let value = try inBundle.isEmpty ? (rest.isEmpty ? nextWord(for: kind, spelled: spelled) : nil) : String(inBundle)
                    tokens.append(Token(row: row, value: value, spelled: spelled))
                }
            }
            index += 1
        }
        return (tokens, index)
    }

    /// The row of an option written out in full (`-k`, `--keep-order`), or nil.
    func row(exactly spelled: String) -> Int? {
        if spelled.count == 2, spelled.hasPrefix("-"), let character = spelled.last, character != "-" { return shortNames[character] }
        guard spelled.hasPrefix("--") else { return nil }
        let key = spelled.dropFirst(2).lowercased()
        return longNames.first { $0.name == key }?.row
    }

    /// The row of a long option: its name exactly (any case), or the one option it is a prefix of.
    func longRow(_ name: String, spelled: String) throws(RunUsageError) -> Int {
        let key = name.lowercased()
        if let exact = longNames.first(where: { $0.name == key }) { return exact.row }
        let matches = longNames.filter { $0.name.hasPrefix(key) }
        let rows = Set(matches.map(\.row))
        guard !key.isEmpty, !rows.isEmpty else { throw RunUsageError("unknown option \(spelled)", code: .unknownOption) }
        guard rows.count == 1 else {
            throw RunUsageError("option \(spelled) is ambiguous (\(matches.map { "--" + $0.name }.sorted().joined(separator: ", ")))", code: .unknownOption)
        }
        return matches[0].row
    }
}

/// Where options come from besides the command line, as GNU reads them: the config files and
/// profiles (`-J`), and `$PARALLEL`.
public struct OptionEnvironment: Sendable {
    /// The environment variables consulted: `PARALLEL`, `PARALLEL_HOME`, `XDG_CONFIG_HOME`,
    /// `XDG_CONFIG_DIRS`, `HOME`.
    public var variables: [String: String]
    /// Reads a file's text, or nil when it cannot be read.
    public var readFile: @Sendable (String) -> String?

    /// An environment with these variables and this way of reading files.
    public init(variables: [String: String], readFile: @escaping @Sendable (String) -> String?) {
        self.variables = variables
        self.readFile = readFile
    }

    /// None: the command line alone.
    public static let none = OptionEnvironment(variables: [:], readFile: { _ in nil })

    /// This process's: its environment variables and its files.
    public static func process() -> OptionEnvironment {
        var variables: [String: String] = [:]
        for name in ["PARALLEL", "PARALLEL_HOME", "XDG_CONFIG_HOME", "XDG_CONFIG_DIRS", "HOME"] {
            if let value = environmentValue(name) { variables[name] = value }
        }
        return OptionEnvironment(variables: variables, readFile: readTextFile)
    }

    /// GNU's config directories: `$PARALLEL_HOME`, `$XDG_CONFIG_HOME/parallel`, each of
    /// `$XDG_CONFIG_DIRS`'s `/parallel`, `~/.parallel`.
    var configDirectories: [String] {
        var directories: [String] = []
        if let home = variables["PARALLEL_HOME"], !home.isEmpty { directories.append(home) }
        if let xdg = variables["XDG_CONFIG_HOME"], !xdg.isEmpty { directories.append(xdg + "/parallel") }
        for directory in (variables["XDG_CONFIG_DIRS"] ?? "").split(separator: ":") { directories.append(directory + "/parallel") }
        if let home = variables["HOME"] { directories.append(home + "/.parallel") }
        return directories
    }

    /// The words of the profiles: `-J NAME`s if given, else the config files that exist.
    func profileWords(_ profiles: [String]) throws(RunUsageError) -> [String] {
        var texts: [String] = []
        if profiles.isEmpty {
            let files = ["/etc/parallel/config"] + configDirectories.map { $0 + "/config" } + (variables["HOME"].map { [$0 + "/.parallelrc"] } ?? [])
            texts = files.compactMap(readFile)
        } else {
            for profile in profiles {
                let candidates = profile.hasPrefix("/") || profile.hasPrefix("./") ? [profile] : configDirectories.map { $0 + "/" + profile }
                let found = candidates.compactMap(readFile)
                guard !found.isEmpty else { throw RunUsageError("option -J: profile \(profile) not readable", code: .cannotOpen) }
                texts += found
            }
        }
        var words: [String] = []
        for text in texts {
            for line in text.split(separator: "\n") where !line.drop(while: { $0 == " " || $0 == "\t" }).hasPrefix("#") {
                words += try RunOptions.shellWords(String(line))
            }
        }
        return words
    }
}
