#if canImport(Glibc)
import Glibc
#endif
import WorkersCore

/// Inputs, file names and commands are bytes, and `workers run` hands them on unchanged. Inside,
/// they ride in `String`s, which hold only Unicode: so bytes that are not UTF-8 are escaped into
/// code points no text uses, as PEP 383's `surrogateescape` does for Python (Swift strings cannot
/// hold lone surrogates, so a private-use block of plane 16 stands in).
///
/// Byte `b` that is not part of valid UTF-8 becomes U+10FE00 + `b`; a valid U+10FE00…U+10FEFF in
/// the input is escaped byte by byte too, so decoding and encoding are exact inverses for every
/// byte string. Every boundary to the outside (exec's arguments and environment, file names,
/// output, the joblog) writes ``String/escapedBytes``.
enum EscapedBytes {
    /// The first scalar of the escape block.
    static let base: UInt32 = 0x10FE00

    /// Whether the scalar stands for a raw byte.
    @inline(__always)
    static func isEscape(_ value: UInt32) -> Bool { value & 0xFFFF00 == base }
}

/// Whether `byte` is among `bytes`: `memchr` over contiguous storage (a long input is searched
/// at memory speed, even in a debug build), else element by element.
func containsByte<Bytes: Collection>(_ bytes: Bytes, _ byte: UInt8) -> Bool where Bytes.Element == UInt8 {
    bytes.withContiguousStorageIfAvailable { buffer in
        guard let base = buffer.baseAddress, !buffer.isEmpty else { return false }
        return memchr(base, Int32(byte), buffer.count) != nil
    } ?? bytes.contains(byte)
}

extension String {
    /// The bytes as a string, bytes that are not UTF-8 escaped (see ``EscapedBytes``).
    init<Bytes: Collection>(escaping bytes: Bytes) where Bytes.Element == UInt8 {
        // Fast path: valid UTF-8 with no 0xF4 lead byte (the only one that can start an escape
        // block scalar) is the common case and decodes as it is.
        if !containsByte(bytes, 0xF4), let valid = String(validating: bytes, as: UTF8.self) {
            self = valid
            return
        }
        self = String(Self.decodeEscaping(Array(bytes)))
    }

    /// The slow path of ``init(escaping:)``: scalar by scalar.
    private static func decodeEscaping(_ source: [UInt8]) -> String.UnicodeScalarView {
        var scalars = String.UnicodeScalarView()
        var index = 0
        func escape(_ byte: UInt8) { scalars.append(Unicode.Scalar(EscapedBytes.base + UInt32(byte))!) }
        while index < source.count {
            let lead = source[index]
            let (length, minimum): (Int, UInt32) = switch lead {
            case 0x00...0x7F: (1, 0)
            case 0xC2...0xDF: (2, 0x80)
            case 0xE0...0xEF: (3, 0x800)
            case 0xF0...0xF4: (4, 0x10000)
            default: (0, 0)
            }
            guard length > 0, index + length <= source.count else { escape(lead); index += 1; continue }
            var value = length == 1 ? UInt32(lead) : UInt32(lead) & (0xFF >> (length + 1))
            var valid = true
            for offset in 1..<Swift.max(length, 1) where valid {
                let byte = source[index + offset]
                if byte & 0xC0 != 0x80 { valid = false } else { value = value << 6 | UInt32(byte & 0x3F) }
            }
            if valid, value >= minimum, value <= 0x10FFFF, !(0xD800...0xDFFF).contains(value), !EscapedBytes.isEscape(value),
               let scalar = Unicode.Scalar(value) {
                scalars.append(scalar)
                index += length
            } else {
                escape(lead)
                index += 1
            }
        }
        return scalars
    }

    /// The string's bytes, escaped bytes written back as themselves.
    var escapedBytes: [UInt8] {
        // Fast path: no 0xF4 byte in the UTF-8, so no escape.
        if !containsByte(utf8, 0xF4) { return Array(utf8) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(utf8.count)
        for scalar in unicodeScalars {
            if EscapedBytes.isEscape(scalar.value) {
                bytes.append(UInt8(truncatingIfNeeded: scalar.value))
            } else {
                bytes.append(contentsOf: UTF8.encode(scalar)!)
            }
        }
        return bytes
    }

    /// Calls `body` with the string's bytes as a NUL-terminated C string.
    func withEscapedCString<R>(_ body: (UnsafePointer<CChar>) throws -> R) rethrows -> R {
        var bytes = escapedBytes.map { CChar(bitPattern: $0) }
        bytes.append(0)
        return try bytes.withUnsafeBufferPointer { try body($0.baseAddress!) }
    }
}

/// Calls `body` with `strings` as a NULL-terminated array of C strings, their bytes unescaped.
func withEscapedCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    withCStrings(bytes: strings.map(\.escapedBytes), body)
}

/// `open(2)` of a file name given as an escaped string.
func openFile(_ path: String, _ flags: Int32, _ mode: mode_t = 0) -> Int32 {
    path.withEscapedCString { open($0, flags, mode) }
}

/// `access(2)` of a file name given as an escaped string.
func fileExists(_ path: String) -> Bool {
    path.withEscapedCString { access($0, F_OK) == 0 }
}

/// The process's environment entries, byte for byte, `strdup`ed, leaving out those whose names
/// start with one of `excluding` (each ending in `=`).
func duplicatedEnvironment(excluding: [String]) -> [UnsafeMutablePointer<CChar>?] {
    var entries: [UnsafeMutablePointer<CChar>?] = []
    var pointer = environ
    while let entry = pointer.pointee {
        pointer += 1
        if excluding.contains(where: { prefix in strncmp(entry, prefix, prefix.utf8.count) == 0 }) { continue }
        entries.append(strdup(entry))
    }
    return entries
}

/// A C string's bytes as a string, bytes that are not UTF-8 escaped.
func escapedString(cString pointer: UnsafePointer<CChar>) -> String {
    String(escaping: UnsafeBufferPointer(start: pointer, count: strlen(pointer)).lazy.map { UInt8(bitPattern: $0) })
}
