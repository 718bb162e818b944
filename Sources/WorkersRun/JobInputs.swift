#if canImport(Glibc)
import Glibc
#endif


/// An input file for reading (`-` is standard input); whether the caller must close it.
func openInput(_ path: String) throws(RunUsageError) -> (Int32, Bool) {
    if path == "-" { return (0, false) }
    let fd = openFile(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw RunUsageError("cannot open input file \(path): \(String(cString: strerror(errno)))") }
    return (fd, true)
}

/// Appends what one `read` of `fd` gives to `buffer`; `false` at the end of the input (or an error).
func readMore(_ fd: Int32, into buffer: inout [UInt8], chunk: inout [UInt8]) -> Bool {
    while true {
        let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count > 0 {
            buffer.append(contentsOf: chunk[0..<count])
            return true
        }
        if count < 0, errno == EINTR { continue }
        return false
    }
}

/// Reads records (lines, NUL- or `-d`-separated) from a file descriptor, one at a time, so an
/// endless input costs constant memory.
final class RecordReader {
    private let fd: Int32
    private let separator: UInt8
    private let closeWhenDone: Bool
    private var buffer: [UInt8] = []
    private var start = 0
    private var atEnd = false
    private var chunk = [UInt8](repeating: 0, count: 64 * 1024)

    init(fd: Int32, separator: UInt8, closeWhenDone: Bool) {
        self.fd = fd
        self.separator = separator
        self.closeWhenDone = closeWhenDone
    }

    convenience init(path: String, separator: UInt8) throws(RunUsageError) {
        let (fd, owned) = try openInput(path)
        self.init(fd: fd, separator: separator, closeWhenDone: owned)
    }

    deinit { if closeWhenDone { close(fd) } }

    /// The next record without its separator, or `nil` at the end. A last record without a
    /// separator still counts; an empty input has no records.
    func next() -> String? {
        guard let record = nextRecord() else { return nil }
        guard separator != 0, record.contains("\0") else { return record }
        // GNU: NUL cannot be passed in an argument; it becomes the two characters \0.
        if !warnedNUL {
            warnedNUL = true
            writeStandardError("workers run: Warning: A NUL character in the input was replaced with \\0.\n"
                + "workers run: Warning: NUL cannot be passed through in the argument list.\n"
                + "workers run: Warning: Did you mean to use the --null option?\n")
        }
        return record.split(separator: "\0", omittingEmptySubsequences: false).joined(separator: "\\0")
    }

    private var warnedNUL = false

    private func nextRecord() -> String? {
        while true {
            if let end = buffer[start...].firstIndex(of: separator) {
                let record = String(escaping: buffer[start..<end])
                start = end + 1
                if start > 64 * 1024 { buffer.removeFirst(start); start = 0 }
                return record
            }
            if atEnd {
                guard start < buffer.count else { return nil }
                let record = String(escaping: buffer[start...])
                start = buffer.count
                return record
            }
            atEnd = !readMore(fd, into: &buffer, chunk: &chunk)
        }
    }
}

/// `--colsep`: a regular expression, or (the common case, and much faster) a plain string
/// without any of its special characters, which splits without the regex engine.
enum ColumnSeparator {
    case literal(String)
    case pattern(Regex<AnyRegexOutput>)

    init(_ pattern: String) throws(RunUsageError) {
        guard !pattern.isEmpty else { throw RunUsageError("option --colsep: the separator is empty") }
        if !pattern.contains(where: { "\\^$.|?*+()[]{}".contains($0) }) {
            self = .literal(pattern)
            return
        }
        do {
            self = .pattern(try Regex(pattern))
        } catch {
            throw RunUsageError("option --colsep: '\(pattern)' is not a regular expression")
        }
    }

    /// `line` cut at every match (an empty match cuts nothing).
    func split(_ line: String) -> [String] {
        switch self {
        case .literal(let separator):
            return line.split(separator: separator, omittingEmptySubsequences: false).map(String.init)
        case .pattern(let regex):
            var columns: [String] = []
            var last = line.startIndex
            for range in line.ranges(of: regex) where !range.isEmpty {
                columns.append(String(line[last..<range.lowerBound]))
                last = range.upperBound
            }
            columns.append(String(line[last...]))
            return columns
        }
    }
}

/// The jobs' argument lists, in order: one source streamed; several combined as GNU does (the
/// cartesian product with the first source varying slowest, or paired with `:::+`/`--link`).
final class JobInputs {
    private let separator: UInt8
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

    init(options: RunOptions) throws(RunUsageError) {
        if options.nullSeparated {
            separator = 0
        } else if let delimiter = options.delimiter {
            guard let byte = delimiter.utf8.first, delimiter.utf8.count == 1 else {
                throw RunUsageError("option -d: the delimiter must be one byte (got '\(delimiter)')")
            }
            separator = byte
        } else {
            separator = UInt8(ascii: "\n")
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
        let header = options.headerLines != nil
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
        for value in values {
            if value == endOfFile { break }
            if skipBlank, value.allSatisfy(Self.whiteSpace.contains) { continue }
            kept.append(value)
        }
        return kept
    }

    private func nextRecord() -> [String]? {
        var record: [String]
        if let stream {
            guard var line = stream.next(), line != endOfFile else { self.stream = nil; return nil }
            while skipBlank, line.allSatisfy(Self.whiteSpace.contains) {
                guard let following = stream.next(), following != endOfFile else { self.stream = nil; return nil }
                line = following
            }
            // -L: a line ending in a blank goes on with the next one.
            while joinContinued, line.last == " " || line.last == "\t", let following = stream.next(), following != endOfFile {
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
        if let csvSeparator, record.count == 1 {
            record = Self.csvFields(record[0], separator: csvSeparator)
        } else if let columnSeparator, record.count == 1 {
            record = columnSeparator.split(record[0])
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

/// `--pipe`: standard input (or the one input file) cut into blocks at record ends — about
/// `--block` bytes each, or `-N` records each — for the jobs' standard input.
final class PipeBlocks {
    private let fd: Int32
    private let closeWhenDone: Bool
    private let blockSize: Int
    /// Record end + record start, and the cut's place in it (`--recend`, `--recstart`).
    private let separator: [UInt8]
    private let cutOffset: Int
    private let recordsPerBlock: Int?
    private var buffer: [UInt8] = []
    private var atEnd = false
    private var chunk = [UInt8](repeating: 0, count: 256 * 1024)
    /// `--header`: lines taken from the start of the input and put before every block.
    private var headerLines: Int?
    private var header: [UInt8] = []

    init(options: RunOptions) throws(RunUsageError) {
        switch options.sources.first {
        case nil:
            fd = 0
            closeWhenDone = false
        case .file(let path) where options.sources.count == 1:
            (fd, closeWhenDone) = try openInput(path)
        default:
            throw RunUsageError("option --pipe reads standard input or one file (-a FILE or :::: FILE), not ::: arguments")
        }
        blockSize = options.blockSize
        (separator, cutOffset) = options.recordSeparator
        recordsPerBlock = options.argumentsPerJob
        headerLines = options.headerLines
    }

    deinit { if closeWhenDone { close(fd) } }

    /// The next block's bytes (after the `--header` lines), or `nil` at the end of the input.
    func next() -> [UInt8]? {
        if let lines = headerLines {
            // The header: its lines, whole, read before the first block.
            var end = 0
            var found = 0
            while found < lines {
                if let newline = buffer[end...].firstIndex(of: UInt8(ascii: "\n")) {
                    end = newline + 1
                    found += 1
                } else if atEnd {
                    end = buffer.count
                    break
                } else {
                    atEnd = !readMore(fd, into: &buffer, chunk: &chunk)
                }
            }
            header = Array(buffer[0..<end])
            buffer.removeFirst(end)
            headerLines = nil
        }
        while true {
            if let cut = cutPoint() {
                let block = header + buffer[0..<cut]
                buffer.removeFirst(cut)
                return block
            }
            if atEnd {
                guard !buffer.isEmpty else { return nil }
                defer { buffer.removeAll() }
                return header + buffer
            }
            atEnd = !readMore(fd, into: &buffer, chunk: &chunk)
        }
    }

    /// Where the next block ends in `buffer`, if a whole block is there.
    private func cutPoint() -> Int? {
        if let records = recordsPerBlock {
            var found = 0
            var index = 0
            while let (cut, next) = find(from: index) {
                found += 1
                index = next
                if found == records { return cut }
            }
            return nil
        }
        guard buffer.count >= blockSize else { return nil }
        // The first cut at or after the block size: blocks are at least --block long.
        return find(from: max(0, blockSize - cutOffset))?.cut
    }

    /// The first cut between two records with the separator at or after `start`: where the block
    /// ends (after the record end, before the record start), and where to look for the next one.
    /// A record start at the very beginning is no cut.
    private func find(from start: Int) -> (cut: Int, next: Int)? {
        var index = start
        while index + separator.count <= buffer.count {
            let match: Int?
            if separator.count == 1 {
                match = buffer[index...].firstIndex(of: separator[0])
            } else {
                var position = index
                while position + separator.count <= buffer.count,
                      !(buffer[position] == separator[0] && buffer[position..<position + separator.count].elementsEqual(separator)) {
                    position += 1
                }
                match = position + separator.count <= buffer.count ? position : nil
            }
            guard let match else { return nil }
            if match + cutOffset > 0 { return (match + cutOffset, match + 1) }
            index = match + 1
        }
        return nil
    }
}

/// `--pipe-part`: one seekable file cut into parts of about `--block` bytes that end on a record
/// end, found by seeking and reading a little at each cut, never the whole file.
final class PipeParts {
    let fd: Int32
    private let size: Int
    private let blockSize: Int
    private let separator: [UInt8]
    private let cutOffset: Int
    private var offset = 0

    init(options: RunOptions) throws(RunUsageError) {
        guard options.sources.count == 1, case .file(let path) = options.sources[0], path != "-" else {
            throw RunUsageError("option --pipe-part needs one seekable file (-a FILE or :::: FILE)")
        }
        let (fd, _) = try openInput(path)
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            throw RunUsageError("option --pipe-part: \(path) is not a regular file")
        }
        self.fd = fd
        size = Int(info.st_size)
        blockSize = options.blockSize
        (separator, cutOffset) = options.recordSeparator
    }

    deinit { close(fd) }

    /// The next part as (offset, length), or `nil` at the end of the file.
    func next() -> (offset: Int, length: Int)? {
        guard offset < size else { return nil }
        let start = offset
        var end = min(size, start + blockSize)
        if end < size {
            // Extend to the next cut between records (after the end string, before the start).
            var window = [UInt8](repeating: 0, count: 64 * 1024)
            var position = max(start, end - cutOffset)
            var found = false
            while position < size, !found {
                let count = window.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(position)) }
                guard count > 0 else { break }
                if let match = Self.find(separator, in: window[0..<count]) {
                    if position + match + cutOffset > start {
                        end = position + match + cutOffset
                        found = true
                    } else {
                        position += match + 1  // a record start at the part's first byte is no cut
                    }
                } else {
                    position += max(1, count - separator.count + 1)
                }
            }
            if !found { end = size }
        }
        offset = end
        return (start, end - start)
    }

    private static func find(_ needle: [UInt8], in haystack: ArraySlice<UInt8>) -> Int? {
        guard needle.count <= haystack.count else { return nil }
        var index = haystack.startIndex
        while index <= haystack.endIndex - needle.count {
            if haystack[index] == needle[0], haystack[index..<index + needle.count].elementsEqual(needle) {
                return index - haystack.startIndex
            }
            index += 1
        }
        return nil
    }
}
