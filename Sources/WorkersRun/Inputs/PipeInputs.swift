#if canImport(Glibc)
import Glibc
#endif

/// `--pipe`: standard input (or the one input file) cut into blocks at record ends — about
/// `--block` bytes each, or `-N` records each — for the jobs' standard input.
final class PipeBlocks {
    private let fd: Int32
    private let closeWhenDone: Bool
    /// `--block`; grown (by GNU's 1.3× + 1) when a window holds no whole record.
    private var blockSize: Int
    /// The bytes after the last cut that GNU holds when it reads on: it reads until it holds a
    /// multiple of `--block` bytes more than these, then cuts at the last record end in them.
    private var carried = 0
    /// Record end + record start, and the cut's place in it (`--recend`, `--recstart`).
    private let separator: [UInt8]
    private let cutOffset: Int
    private let recordsPerBlock: Int?
    /// `-L N`: records of N lines.
    private let linesPerRecord: Int?
    /// `-r`: lines of nothing but white space are taken out of the input before it is cut (GNU's
    /// `s/^\s*\n//gm` on what it has read), whatever the record separator.
    private let dropsBlankLines: Bool
    private var buffer: [UInt8] = []
    private var atEnd = false
    private var chunk = [UInt8](repeating: 0, count: 256 * 1024)
    /// `--header`: what is taken from the start of the input and put before every block, until it
    /// has been read.
    private var headerRule: HeaderRule?
    private var header: [UInt8] = []

    /// How `--header` finds the header: a number of lines, or GNU's `^(REGEXP)` on the bytes read.
    enum HeaderRule {
        case lines(Int)
        /// Matched a byte to a character (Latin-1), as Perl matches the bytes it reads.
        case pattern(Regex<AnyRegexOutput>)
    }

    init(options: RunOptions) throws(RunUsageError) {
        switch options.sources.first {
        case nil:
            fd = 0
            closeWhenDone = false
        case .file(let path) where options.sources.count == 1:
            (fd, closeWhenDone) = try openInput(path)
        default:
            throw RunUsageError("option --pipe reads standard input or one file (-a FILE or :::: FILE), not several", code: .conflictingOptions)
        }
        blockSize = options.blockSize
        (separator, cutOffset) = options.recordSeparator
        recordsPerBlock = options.argumentsPerJob
        linesPerRecord = options.linesPerRecord
        dropsBlankLines = options.skipBlankInputs
        switch options.header {
        case .lines(let count)?: headerRule = .lines(count)
        case .pattern(let text)?:
            do {
                headerRule = .pattern(try Regex(Self.latin1(text.escapedBytes)).matchingSemantics(.unicodeScalar))
            } catch {
                throw RunUsageError("option --header: '\(text)' is not a regular expression", code: .invalidValue)
            }
        case .fileNamesOnly?, nil: headerRule = nil
        }
    }

    deinit { if closeWhenDone { close(fd) } }

    /// The next block's bytes (after the `--header` lines), or `nil` at the end of the input.
    func next() -> [UInt8]? {
        if let rule = headerRule {
            header = readHeader(rule)
            headerRule = nil
        }
        while true {
            if let cut = cutPoint() {
                let block = header + buffer[0..<cut]
                buffer.removeFirst(cut)
                return block
            }
            if atEnd {
                guard !buffer.isEmpty else { return nil }
                // -L: GNU cuts the whole records off the end first, then sends the rest.
                if let lines = linesPerRecord, let cut = lineRecordCut(within: buffer.count, lines: lines), cut < buffer.count {
                    defer { buffer.removeFirst(cut) }
                    return header + buffer[0..<cut]
                }
                defer { buffer.removeAll() }
                return header + buffer
            }
            let before = buffer.count
            atEnd = !readMore(fd, into: &buffer, chunk: &chunk)
            // Lines before the last one already read were checked when they came.
            if dropsBlankLines { Self.dropBlankLines(&buffer, from: buffer[..<before].lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? 0) }
        }
    }

    /// Takes the header off the start of the input: `lines` whole lines (fewer at its end), or
    /// the longest start that `pattern` matches once a read makes it match (none, if the input
    /// ends first: GNU reads on until then).
    private func readHeader(_ rule: HeaderRule) -> [UInt8] {
        var end = 0
        switch rule {
        case .lines(let lines):
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
        case .pattern(let regex):
            while true {
                if !atEnd { atEnd = !readMore(fd, into: &buffer, chunk: &chunk) }
                let text = Self.latin1(buffer)
                if let match = try? regex.prefixMatch(in: text) {
                    end = text.unicodeScalars.distance(from: text.startIndex, to: match.range.upperBound)
                    break
                }
                if atEnd { break }
            }
        }
        defer { buffer.removeFirst(end) }
        return Array(buffer[0..<end])
    }

    /// Bytes as the characters U+0000 to U+00FF, one each, so a regex sees what Perl sees.
    static func latin1(_ bytes: some Sequence<UInt8>) -> String {
        var scalars = String.UnicodeScalarView()
        scalars.append(contentsOf: bytes.map { Unicode.Scalar($0) })
        return String(scalars)
    }

    /// Removes every line from `start` on that is only white space and ends in a newline.
    static func dropBlankLines(_ buffer: inout [UInt8], from start: Int = 0) {
        var kept = Array(buffer[..<start])
        kept.reserveCapacity(buffer.count)
        var lineStart = start
        var blank = true
        for index in start..<buffer.count {
            let byte = buffer[index]
            if byte == UInt8(ascii: "\n") {
                if !blank { kept += buffer[lineStart...index] }
                lineStart = index + 1
                blank = true
            } else if !(byte == 32 || (9...13).contains(byte)) {
                blank = false
            }
        }
        kept += buffer[lineStart...]
        buffer = kept
    }

    /// Where the next block ends in `buffer`, if a whole block is there.
    private func cutPoint() -> Int? {
        if let records = recordsPerBlock {
            // GNU's pass_n looks for the first separator from the second byte on, so an empty
            // record at the start of a block joins the next one.
            var found = 0
            var index = 1
            while let (cut, next) = find(from: index) {
                found += 1
                index = next
                if found == records { return cut }
            }
            return nil
        }
        while true {
            // GNU's read_block: it reads up to the next multiple of --block above what it holds.
            let window = (carried / blockSize + 1) * blockSize
            guard buffer.count >= window else { return nil }
            // GNU's pass: the last cut in what it holds (-L: after the last whole record).
            if let cut = linesPerRecord.map({ lineRecordCut(within: window, lines: $0) }) ?? lastCut(within: window) {
                carried = window - cut
                return cut
            }
            // No whole record in it: GNU grows the block (1.3× + 1), warns, and reads on.
            carried = window
            let old = blockSize
            blockSize = min(Int((Double(blockSize) * 1.3 + 1).rounded(.up)), Int(Int32.max))
            writeFully(STDERR_FILENO, Array("\(programName): Warning: A record was longer than \(old). Increasing to --blocksize \(blockSize).\n".utf8))
        }
    }

    /// -L: after the last newline in `buffer[0..<limit]` that ends a whole record of `lines`
    /// lines (the buffer starts at a record's start).
    private func lineRecordCut(within limit: Int, lines: Int) -> Int? {
        var newlines = buffer[0..<limit].count { $0 == UInt8(ascii: "\n") }
        var position = limit
        while newlines > 0 {
            position = buffer[0..<position].lastIndex(of: UInt8(ascii: "\n"))!
            if newlines % lines == 0 { return position + 1 }
            newlines -= 1
        }
        return nil
    }

    /// The last cut with the whole separator in `buffer[0..<limit]`, not at the very start.
    private func lastCut(within limit: Int) -> Int? {
        var end = limit - separator.count
        while end >= 0 {
            let match: Int?
            if separator.count == 1 {
                match = buffer[0...end].lastIndex(of: separator[0])
            } else {
                var position = end
                while position >= 0, !buffer[position..<position + separator.count].elementsEqual(separator) { position -= 1 }
                match = position >= 0 ? position : nil
            }
            guard let match else { return nil }
            if match + cutOffset > 0 { return match + cutOffset }
            end = match - 1
        }
        return nil
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

    /// The file of `options`, cut for `slots` job slots (`--block -N`: N parts a slot).
    init(options: RunOptions, slots: Int) throws(RunUsageError) {
        guard options.sources.count == 1, case .file(let path) = options.sources[0], path != "-" else {
            throw RunUsageError("option --pipe-part needs one seekable file (-a FILE or :::: FILE)", code: .conflictingOptions)
        }
        // GNU's words for a --pipe-part file that is not there.
        guard fileExists(path) else { throw .gnu("File not found: \(path)", code: .cannotOpen) }
        let (fd, _) = try openInput(path)
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            throw RunUsageError("option --pipe-part: \(path) is not a regular file", code: .cannotOpen)
        }
        self.fd = fd
        size = Int(info.st_size)
        if let perSlot = options.blocksPerSlot {
            // GNU: 1 + int(size / slots / N).
            blockSize = 1 + Int(Double(size) / Double(max(1, slots)) / perSlot)
        } else {
            blockSize = options.blockSize
        }
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
