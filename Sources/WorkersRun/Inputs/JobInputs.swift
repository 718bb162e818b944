#if canImport(Glibc)
import Glibc
#endif

/// The jobs' argument lists, in order: one source streamed; several combined as GNU does (the
/// cartesian product with the first source varying slowest, or paired with `:::+`/`--link`).
final class JobInputs {
    private let separator: [UInt8]
    private let columnSeparator: ColumnSeparator?
    private let perJob: Int
    private var stream: RecordReader?
    private var combined: [[String]] = []
    private var combinedIndex = 0
    /// `-E`: the value that ends the input; `-r`: skip blank values; `--trim`.
    private let endOfFile: String?
    private let skipBlank: Bool
    private let joinContinued: Bool
    /// `--csv`: rows are parsed as CSV, with this separator.
    private let csvSeparator: String?
    private let trim: RunOptions.Trim
    /// `--header`: the names of the columns (or of the sources), in order.
    private(set) var headerNames: [String] = []
    private static let whiteSpace: Set<Character> = [" ", "\t", "\n", "\r", "\u{0B}", "\u{0C}"]
    /// Lines read so far that end in CR, while the first three are checked (GNU warns when all
    /// three do and no -d was given); `nil` once checked.
    private var carriageReturns: (lines: Int, ending: Int)?

    init(options: RunOptions) throws(RunUsageError) {
        if options.nullSeparated {
            separator = [0]
        } else if let delimiter = options.delimiter {
            guard !delimiter.isEmpty else { throw RunUsageError("option -d needs a delimiter", code: .missingValue) }
            separator = delimiter.escapedBytes
        } else {
            separator = [UInt8(ascii: "\n")]
            carriageReturns = (0, 0)
        }
        if let pattern = options.columnSeparator {
            columnSeparator = try ColumnSeparator(pattern)
        } else {
            columnSeparator = nil
        }
        perJob = options.argumentsPerJob ?? 1
        endOfFile = options.endOfFile
        skipBlank = options.skipBlankInputs
        joinContinued = options.joinContinuedLines
        csvSeparator = options.csv ? options.columnSeparator ?? "," : nil
        trim = options.trim ?? (options.columnSeparator == nil ? .none : .both)
        let sources = options.sources
        let header = options.header?.readsInput ?? false
        if sources.isEmpty {
            stream = RecordReader(fd: 0, separator: separator, closeWhenDone: false)
        } else if sources.count == 1 {
            switch sources[0] {
            case .file(let path): stream = try RecordReader(path: path, separator: separator)
            case .arguments(var values):
                if header, !values.isEmpty { headerNames = columns(of: values.removeFirst()) }
                combined = accepted(values).map { [$0] }
            }
        } else {
            var lists: [[String]] = []
            for source in sources {
                switch source {
                case .arguments(let values): lists.append(accepted(values))
                case .file(let path):
                    let reader = try RecordReader(path: path, separator: separator)
                    var values: [String] = []
                    while let record = reader.next() { values.append(record) }
                    lists.append(accepted(values))
                }
            }
            if header {
                // Each source's first value is its name.
                headerNames = lists.map { $0.first ?? "" }
                lists = lists.map { Array($0.dropFirst()) }
            }
            // GNU: an empty source among others counts as one empty value (`::: a b :::` runs
            // `echo a ''`, `echo b ''`); only when every source is empty is there no job.
            if !lists.allSatisfy(\.isEmpty) { lists = lists.map { $0.isEmpty ? [""] : $0 } }
            combined = Self.combine(lists, linked: options.linked, linkAll: options.link)
        }
        if header, let stream, let first = stream.next() { headerNames = columns(of: first) }
    }

    /// `--header`'s names as a dictionary from name to position (from 1), for `{name}`.
    var namePositions: [String: Int] {
        var positions: [String: Int] = [:]
        for (index, name) in headerNames.enumerated() where !name.isEmpty && positions[name] == nil { positions[name] = index + 1 }
        return positions
    }

    /// A header line's names: split and trimmed as the values will be.
    private func columns(of line: String) -> [String] {
        let parts = csvSeparator.map { Self.csvFields(line, separator: $0) } ?? columnSeparator?.split(line) ?? [line]
        return trim == .none ? parts : parts.map { trimmed($0, of: Self.whiteSpace) }
    }

    /// GNU's combination: groups of linked sources are zipped (`:::+`: the shortest wins;
    /// `--link`: shorter ones wrap), and the groups multiplied, the first varying slowest.
    static func combine(_ lists: [[String]], linked: [Bool], linkAll: Bool) -> [[String]] {
        if linkAll {
            let longest = lists.map(\.count).max() ?? 0
            guard !lists.contains(where: \.isEmpty) else { return [] }
            return (0..<longest).map { row in lists.map { $0[row % $0.count] } }
        }
        var groups: [[[String]]] = []  // each group: rows of values
        for (index, list) in lists.enumerated() {
            let rows = list.map { [$0] }
            if index > 0, index < linked.count, linked[index], var last = groups.popLast() {
                let count = min(last.count, rows.count)
                last = (0..<count).map { last[$0] + rows[$0] }
                groups.append(last)
            } else {
                groups.append(rows)
            }
        }
        var product: [[String]] = [[]]
        for group in groups {
            product = product.flatMap { prefix in group.map { prefix + $0 } }
        }
        return groups.isEmpty ? [] : product
    }

    /// The descriptor to wait on when ``next()`` would wait for a slow writer (a pipe that has
    /// no whole record yet), else `nil`. The runner then waits for it beside its jobs, so a job
    /// that ends meanwhile is reported at once, not when the next input line comes.
    func descriptorToWaitFor() -> Int32? {
        guard let stream, !stream.hasRecordWithoutWaiting() else { return nil }
        return stream.descriptor
    }

    /// The next job's arguments (`-N` groups several records), or `nil` when the input is done.
    func next() -> [String]? {
        if perJob == 0 { return nextRecord().map { _ in [] } }
        var arguments: [String] = []
        var records = 0
        while records < perJob, let record = nextRecord() {
            arguments += record
            records += 1
        }
        return records == 0 ? nil : arguments
    }

    /// One CSV row's fields (RFC 4180): a field in quotes may hold the separator, newlines and
    /// doubled quotes, which stand for one.
    static func csvFields(_ row: String, separator: String) -> [String] {
        var fields: [String] = []
        var field = ""
        var quoted = false
        var rest = Substring(row)
        while let character = rest.first {
            if quoted {
                if character == "\"" {
                    if rest.dropFirst().first == "\"" { field.append("\""); rest = rest.dropFirst(2); continue }
                    quoted = false
                } else {
                    field.append(character)
                }
                rest = rest.dropFirst()
            } else if rest.hasPrefix(separator) {
                fields.append(field)
                field = ""
                rest = rest.dropFirst(separator.count)
            } else {
                if character == "\"" { quoted = true } else { field.append(character) }
                rest = rest.dropFirst()
            }
        }
        fields.append(field)
        return fields
    }

    /// A source's values as GNU reads them: up to the `-E` value, blank ones dropped with `-r`.
    private func accepted(_ values: [String]) -> [String] {
        var kept: [String] = []
        var continued: String?
        for value in values {
            if value == endOfFile { break }
            // -L: a value ending in a blank goes on with the next, as a line does.
            let value = (continued ?? "") + value
            continued = nil
            if skipBlank, value.allSatisfy(Self.whiteSpace.contains) { continue }
            if joinContinued, let last = value.last, Self.continues(last) {
                continued = value
                continue
            }
            kept.append(value)
        }
        if let continued { kept.append(continued) }
        return kept
    }

    /// GNU's warning for DOS text: the first three values all end in CR.
    private func checkCarriageReturn(_ line: String, seen: (lines: Int, ending: Int)) {
        let now = (seen.lines + 1, seen.ending + (line.unicodeScalars.last == "\r" ? 1 : 0))
        guard now.0 == 3 else { carriageReturns = now; return }
        carriageReturns = nil
        if now.1 == 3 {
            writeFully(STDERR_FILENO, Array("\(programName): Warning: The first three values end in CR-NL. Consider using -d \"\\r\\n\"\n".utf8))
        }
    }

    /// Whether a line ending in `character` goes on with the next under -L (GNU's blanks).
    private static func continues(_ character: Character) -> Bool {
        character == " " || character == "\t" || character == "\u{0B}" || character == "\u{0C}"
    }

    private func nextRecord() -> [String]? {
        var record: [String]
        if let stream {
            guard var line = stream.next(), line != endOfFile else { self.stream = nil; return nil }
            if let seen = carriageReturns { checkCarriageReturn(line, seen: seen) }
            while skipBlank, line.allSatisfy(Self.whiteSpace.contains) {
                guard let following = stream.next(), following != endOfFile else { self.stream = nil; return nil }
                line = following
            }
            // -L: a line ending in a blank (a space, tab, vertical tab or form feed, as GNU's)
            // goes on with the next one.
            while joinContinued, let last = line.last, Self.continues(last), let following = stream.next() {
                // -E inside a continued line ends the input after it.
                if following == endOfFile { self.stream = nil; break }
                line += following
            }
            // --csv: a quoted field can hold newlines; the row goes on until its quotes pair up
            // (counted line by line, not over the whole row again).
            if csvSeparator != nil {
                let quote = UInt8(ascii: "\"")
                var quotes = line.utf8.count(where: { $0 == quote })
                while quotes % 2 == 1, let following = stream.next() {
                    line += "\n" + following
                    quotes += following.utf8.count(where: { $0 == quote })
                }
            }
            record = [line]
        } else {
            guard combinedIndex < combined.count else { return nil }
            record = combined[combinedIndex]
            combinedIndex += 1
        }
        // Each source's value is split into columns (GNU: `-a f1 -a f2 --colsep` splits both).
        if let csvSeparator {
            record = record.flatMap { Self.csvFields($0, separator: csvSeparator) }
        } else if let columnSeparator {
            record = record.flatMap { columnSeparator.split($0) }
        }
        // --trim (with --colsep, rl unless told otherwise).
        switch trim {
        case .none: return record
        case .both: return record.map { trimmed($0, of: Self.whiteSpace) }
        case .left: return record.map { value in String(value.drop(while: Self.whiteSpace.contains)) }
        case .right:
            return record.map { value in
                guard let last = value.lastIndex(where: { !Self.whiteSpace.contains($0) }) else { return "" }
                return String(value[...last])
            }
        }
    }
}
