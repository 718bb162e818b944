#if canImport(Glibc)
import Glibc
#endif
import WorkersCore

/// An input file for reading (`-` is standard input); whether the caller must close it.
func openInput(_ path: String) throws(RunUsageError) -> (Int32, Bool) {
    if path == "-" { return (0, false) }
    let fd = openFile(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw .gnu("Cannot open input file `\(path)': \(String(cString: strerror(errno))).", code: .cannotOpen) }
    return (fd, true)
}

/// Appends what one `read` of `fd` gives to `buffer`; `false` at the end of the input (or an error).
func readMore(_ fd: Int32, into buffer: inout [UInt8], chunk: inout [UInt8]) -> Bool {
    let count = chunk.withUnsafeMutableBytes { readRetryingInterrupts(fd, into: $0) }
    guard count > 0 else { return false }
    buffer.append(contentsOf: chunk[0..<count])
    return true
}

/// Reads records (lines, NUL- or `-d`-separated) from a file descriptor, one at a time, so an
/// endless input costs constant memory.
final class RecordReader {
    private let fd: Int32
    /// The record separator: a newline, NUL (`-0`), or `-d`'s bytes (one or more).
    private let separator: [UInt8]
    private let closeWhenDone: Bool
    private var buffer: [UInt8] = []
    private var start = 0
    private var atEnd = false
    private var chunk = [UInt8](repeating: 0, count: 64 * 1024)

    init(fd: Int32, separator: [UInt8], closeWhenDone: Bool) {
        self.fd = fd
        self.separator = separator
        self.closeWhenDone = closeWhenDone
    }

    convenience init(path: String, separator: [UInt8]) throws(RunUsageError) {
        let (fd, owned) = try openInput(path)
        self.init(fd: fd, separator: separator, closeWhenDone: owned)
    }

    deinit { if closeWhenDone { close(fd) } }

    /// The next record without its separator, or `nil` at the end. A last record without a
    /// separator still counts; an empty input has no records.
    func next() -> String? {
        guard let record = nextRecord() else { return nil }
        guard separator != [0], containsByte(record.utf8, 0) else { return record }
        // GNU: NUL cannot be passed in an argument; it becomes the two characters \0.
        if !warnedNUL {
            warnedNUL = true
            writeStandardError("\(programName): Warning: A NUL character in the input was replaced with \\0.\n"
                + "\(programName): Warning: NUL cannot be passed through in the argument list.\n"
                + "\(programName): Warning: Did you mean to use the --null option?\n")
        }
        return record.split(separator: "\0", omittingEmptySubsequences: false).joined(separator: "\\0")
    }

    private var warnedNUL = false

    /// The descriptor records are read from.
    var descriptor: Int32 { fd }

    /// Whether ``next()`` can return without waiting for the writer: a whole record is buffered,
    /// the input has ended, or bytes are waiting (then they are read, without blocking).
    func hasRecordWithoutWaiting() -> Bool {
        while true {
            if atEnd || separatorIndex() != nil { return true }
            var probe = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&probe, 1, 0) > 0 else { return false }
            atEnd = !readMore(fd, into: &buffer, chunk: &chunk)
        }
    }

    /// Where the search for the next separator goes on: the bytes from `start` to here hold none,
    /// so a long record costs one pass over its bytes, not one per read.
    private var searched = 0

    /// Where the next separator starts in the unread part of the buffer.
    private func separatorIndex() -> Int? {
        let from = max(start, searched)
        let found: Int?
        if separator.count == 1 {
            found = buffer.withUnsafeBufferPointer { bytes in
                guard from < bytes.count, let base = bytes.baseAddress,
                      let hit = memchr(base + from, Int32(separator[0]), bytes.count - from) else { return nil }
                return base.distance(to: hit.assumingMemoryBound(to: UInt8.self))
            }
        } else {
            found = buffer[from...].firstRange(of: separator)?.lowerBound
        }
        if found == nil { searched = max(start, buffer.count - separator.count + 1) }
        return found
    }

    private func nextRecord() -> String? {
        while true {
            if let end = separatorIndex() {
                let record = String(escaping: buffer[start..<end])
                start = end + separator.count
                if start > 64 * 1024 { buffer.removeFirst(start); start = 0 }
                searched = start
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
        guard !pattern.isEmpty else { throw RunUsageError("option --colsep: the separator is empty", code: .missingValue) }
        if let literal = Self.literal(pattern) {
            self = .literal(literal)
            return
        }
        do {
            self = .pattern(try Regex(pattern))
        } catch {
            throw RunUsageError("option --colsep: '\(pattern)' is not a regular expression", code: .invalidValue)
        }
    }

    /// The text a pattern matches when it matches only one text: no special character, or one
    /// escaped (`\|`, `\.`), or `\t`, `\n`, `\r` (GNU's `--colsep '\t'`, the usual one).
    static func literal(_ pattern: String) -> String? {
        var text = ""
        var escaped = false
        for character in pattern {
            if escaped {
                escaped = false
                switch character {
                case "t": text.append("\t")
                case "n": text.append("\n")
                case "r": text.append("\r")
                case _ where character.isASCII && (character.isPunctuation || character.isSymbol): text.append(character)
                default: return nil
                }
            } else if character == "\\" {
                escaped = true
            } else if "^$.|?*+()[]{}".contains(character) {
                return nil
            } else {
                text.append(character)
            }
        }
        return escaped ? nil : text
    }

    /// `line` cut at every match (an empty match cuts nothing).
    func split(_ line: String) -> [String] {
        switch self {
        case .literal(let separator) where separator.utf8.count == 1 && separator != "\r":
            // One byte (a tab, a comma): cut the bytes, not the characters.
            return line.utf8.split(separator: separator.utf8.first!, omittingEmptySubsequences: false).map { String(Substring($0)) }
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
