#if canImport(Glibc)
import Glibc
#endif

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
