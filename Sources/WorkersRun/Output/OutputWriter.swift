#if canImport(Glibc)
import Glibc
#endif
import WorkersCore

/// The middle value of `values` (the upper one of the two middle values for an even count).
func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted[sorted.count / 2]
}

/// Writes jobs' output to our stdout and stderr: whole, one job at a time, never half a line.
final class OutputWriter {
    private var buffer = [UInt8](repeating: 0, count: 64 * 1024)
    private let progressOnTerminal = isatty(STDERR_FILENO) == 1
    /// Whether stderr is a terminal (the failure summary is printed only then).
    var errorIsTerminal: Bool { progressOnTerminal }

    /// Copies a finished job's stdout then its stderr (the caller recycles both), each line tagged if asked.
    func print(_ stdout: OwnedDescriptor?, _ stderr: OwnedDescriptor?, tag: String?) {
        copy(stdout, to: STDOUT_FILENO, tag: tag)
        copy(stderr, to: STDERR_FILENO, tag: tag)
    }

    private func copy(_ file: OwnedDescriptor?, to target: Int32, tag: String?) {
        guard let fd = file?.raw else { return }
        // An empty buffer (most jobs' stderr, many jobs' stdout) costs one lseek.
        guard lseek(fd, 0, SEEK_END) > 0 else { return }
        lseek(fd, 0, SEEK_SET)
        var atLineStart = true
        while true {
            let count = buffer.withUnsafeMutableBytes { readRetryingInterrupts(fd, into: $0) }
            guard count > 0 else { return }
            writeLines(buffer[0..<count], to: target, tag: tag, atLineStart: &atLineStart)
        }
    }

    /// Writes whole lines (the last may lack its newline), each prefixed with `tag` and a tab.
    func writeLines(_ bytes: ArraySlice<UInt8>, to target: Int32, tag: String?) {
        var atLineStart = true
        writeLines(bytes, to: target, tag: tag, atLineStart: &atLineStart)
    }

    /// Writes `bytes`, putting `tag` and a tab before each line; `atLineStart` carries across
    /// calls whether the next byte begins a line.
    private func writeLines(_ bytes: ArraySlice<UInt8>, to target: Int32, tag: String?, atLineStart: inout Bool) {
        guard let tag else { writeFully(target, bytes); return }
        let prefix = (tag + "\t").escapedBytes
        var tagged: [UInt8] = []
        tagged.reserveCapacity(bytes.count + prefix.count * 4)
        for byte in bytes {
            if atLineStart { tagged += prefix }
            tagged.append(byte)
            atLineStart = byte == UInt8(ascii: "\n")
        }
        writeFully(target, tagged[...])
    }

    func write(_ text: String) { writeFully(STDOUT_FILENO, text.escapedBytes) }
    func writeError(_ text: String) { writeStandardError(text) }

    func progress(_ text: String) {
        writeError(progressOnTerminal ? "\r\u{1B}[K" + text : text + "\n")
    }

    /// Ends a progress line redrawn in place, so what follows starts on a line of its own.
    func endProgress() {
        if progressOnTerminal { writeError("\n") }
    }
}

extension String {
    /// GNU's joblog keeps one job per line by writing a command's newlines as NUL.
    func replacingNewlines(with replacement: Character) -> String {
        contains("\n") ? String(map { $0 == "\n" ? replacement : $0 }) : self
    }

    func replacingNUL(with replacement: Character) -> String {
        contains("\0") ? String(map { $0 == "\0" ? replacement : $0 }) : self
    }
}
