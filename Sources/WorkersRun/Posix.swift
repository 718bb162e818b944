#if canImport(Glibc)
import Glibc
#endif

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

/// The whole of a file as UTF-8 text (invalid bytes repaired), or `nil` when it cannot be read.
func readTextFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 64 * 1024)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count < 0, errno == EINTR { continue }
        guard count >= 0 else { return nil }
        if count == 0 { break }
        bytes.append(contentsOf: chunk[0..<count])
    }
    return String(decoding: bytes, as: UTF8.self)
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

/// The process's environment as `NAME=value` strings.
func environmentEntries() -> [String] {
    var entries: [String] = []
    var pointer = environ
    while let entry = pointer.pointee {
        entries.append(String(cString: entry))
        pointer += 1
    }
    return entries
}

/// `text` as a JSON string literal, quotes included (RFC 8259 escapes).
func jsonString(_ text: String) -> String {
    var result = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": result += "\\\""
        case "\\": result += "\\\\"
        case "\n": result += "\\n"
        case "\r": result += "\\r"
        case "\t": result += "\\t"
        case _ where scalar.value < 0x20: result += cFormat("\\u%04x", Int32(scalar.value))
        default: result.unicodeScalars.append(scalar)
        }
    }
    return result + "\""
}
