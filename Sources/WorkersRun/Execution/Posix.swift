#if canImport(Glibc)
import Glibc
#endif
import WorkersCore

// The few things Foundation gave this module, on the C library instead: `workers run` (and the
// `workers-run` executable) must not load Foundation, whose start-up alone costs more than a
// trivial job.

/// `text` without the characters of `set` at either end.
func trimmed<S: StringProtocol>(_ text: S, of set: Set<Character>) -> String {
    guard let first = text.firstIndex(where: { !set.contains($0) }), let last = text.lastIndex(where: { !set.contains($0) }) else { return "" }
    return String(text[first...last])
}

/// `printf`'s formatting of `arguments` (the C library's, so `%10.3f` is exactly GNU's).
func cFormat(_ format: String, _ arguments: any CVarArg...) -> String {
    var capacity = 128
    while true {
        var buffer = [CChar](repeating: 0, count: capacity)
        let length = withVaList(arguments) { vsnprintf(&buffer, capacity, format, $0) }
        guard length >= 0 else { return "" }
        if Int(length) < capacity {
            return String(decoding: buffer[0..<Int(length)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        capacity = Int(length) + 1
    }
}

/// Seconds since the epoch (CLOCK_REALTIME), for the joblog's start times.
func epochSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

/// The whole of a file as text (bytes that are not UTF-8 escaped), or `nil` when it cannot be read.
func readTextFile(_ path: String) -> String? {
    readWholeFile(path).map { String(escaping: $0) }
}

/// A whole file's bytes, or `nil` (errno set) when it cannot be read.
func readWholeFile(_ path: String) -> [UInt8]? {
    guard let fd = OwnedDescriptor(openFile(path, O_RDONLY | O_CLOEXEC)) else { return nil }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 64 * 1024)
    while true {
        let count = chunk.withUnsafeMutableBytes { readRetryingInterrupts(fd.raw, into: $0) }
        guard count >= 0 else { return nil }
        if count == 0 { return bytes }
        bytes.append(contentsOf: chunk[0..<count])
    }
}

/// Where a symbolic link points, or `nil`.
func symbolicLinkTarget(_ path: String) -> String? {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let length = readlink(path, &buffer, buffer.count - 1)
    guard length > 0 else { return nil }
    return String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// The value of an environment variable, or `nil`.
func environmentValue(_ name: String) -> String? {
    getenv(name).map { String(cString: $0) }
}

/// `text` as a JSON string literal, quotes included, escaped as GNU escapes JSON.
func jsonString(_ text: String) -> String {
    "\"" + String(escaping: jsonEscaped(text.escapedBytes)) + "\""
}

/// GNU's JSON escaping: `\` and `"` escaped, every byte below 0x20 as `\u00XX`; other bytes as they are.
func jsonEscaped(_ bytes: [UInt8]) -> [UInt8] {
    var escaped: [UInt8] = []
    escaped.reserveCapacity(bytes.count)
    let hex = Array("0123456789abcdef".utf8)
    for byte in bytes {
        switch byte {
        case UInt8(ascii: "\\"), UInt8(ascii: "\""): escaped += [UInt8(ascii: "\\"), byte]
        case 0..<0x20: escaped += Array("\\u00".utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
        default: escaped.append(byte)
        }
    }
    return escaped
}

/// Writes all of `bytes` to `fd` (retrying short writes and EINTR); `false` on an error.
@discardableResult
func writeFully(_ fd: Int32, _ bytes: ArraySlice<UInt8>) -> Bool {
    bytes.withUnsafeBytes { writeAll(fd, $0) }
}

/// Writes all of `bytes` to `fd`; `false` on an error.
@discardableResult
func writeFully(_ fd: Int32, _ bytes: [UInt8]) -> Bool { writeFully(fd, bytes[...]) }

/// `text` on our stderr, whole.
func writeStandardError(_ text: String) { writeFully(STDERR_FILENO, text.escapedBytes) }

/// Copies `length` bytes at `offset` of `source` to `target` inside the kernel (sendfile).
func copyFileRange(from source: Int32, offset: Int, length: Int, to target: Int32) -> Bool {
    var position = off_t(offset)
    var left = length
    while left > 0 {
        let sent = retryingInterrupts { sendfile(target, source, &position, left) }
        if sent <= 0 { return false }
        left -= sent
    }
    return true
}

/// All of `source` (a file, from its start; none: nothing) appended to `target`.
func copyWholeFile(from source: OwnedDescriptor?, to target: Int32) -> Bool {
    guard let source else { return true }
    let length = Int(lseek(source.raw, 0, SEEK_END))
    return length <= 0 || copyFileRange(from: source.raw, offset: 0, length: length, to: target)
}

/// `mkdir -p`; an error message naming the directory it could not make, or `nil`.
func makeDirectories(_ path: String) -> String? {
    guard !path.isEmpty else { return nil }
    var current = path.hasPrefix("/") ? "/" : ""
    for component in path.split(separator: "/") {
        current += component
        if current.withEscapedCString({ mkdir($0, 0o777) }) != 0, errno != EEXIST {
            return "cannot make the directory \(current): \(String(cString: strerror(errno)))"
        }
        current += "/"
    }
    return nil
}

/// `rm -rf path`: files, links and directories under it, depth first; errors are ignored.
func removeTree(_ path: String) {
    var status = stat()
    guard path.withEscapedCString({ lstat($0, &status) }) == 0 else { return }
    if status.st_mode & S_IFMT == S_IFDIR, let directory = path.withEscapedCString({ opendir($0) }) {
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(escaping: raw.prefix { $0 != 0 })
            }
            if name != ".", name != ".." { names.append(name) }
        }
        closedir(directory)
        for name in names { removeTree(path + "/" + name) }
        _ = path.withEscapedCString { rmdir($0) }
    } else {
        _ = path.withEscapedCString { unlink($0) }
    }
}

/// The name messages start with: `parallel` when run through a link of that name (so scripts and
/// test suites that match GNU's messages keep matching), else `workers run`.
let programName: String = {
    guard CommandLine.argc > 0, let first = CommandLine.unsafeArgv[0] else { return "workers run" }
    return String(cString: first).split(separator: "/").last == "parallel" ? "parallel" : "workers run"
}()

/// Linux's `F_SETPIPE_SZ` (`F_LINUX_SPECIFIC_BASE + 7`), which Glibc's Swift module leaves out.
let linuxSetPipeSize: Int32 = 1031
