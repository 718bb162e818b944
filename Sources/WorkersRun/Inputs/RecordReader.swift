#if canImport(Glibc)
import Glibc
#endif
import WorkersCore

/// An input file for reading (`-` is standard input); whether the caller must close it.
func openInput(_ path: String) throws(RunUsageError) -> (Int32, Bool) {
    if path == "-" { return (0, false) }
    let fd = openFile(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw .gnu("Cannot open input file `\(path)': \(String(cString: strerror(errno))).") }
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
        guard separator != [0], record.contains("\0") else { return record }
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

    /// Where the next separator starts in the unread part of the buffer.
    private func separatorIndex() -> Int? {
        separator.count == 1 ? buffer[start...].firstIndex(of: separator[0]) : buffer[start...].firstRange(of: separator)?.lowerBound
    }

    private func nextRecord() -> String? {
        while true {
            if let end = separatorIndex() {
                let record = String(escaping: buffer[start..<end])
                start = end + separator.count
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
