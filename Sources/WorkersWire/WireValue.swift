/// The self-describing binary form the wire coder writes: a tag byte, then the value.
///
/// Integers are LEB128 varints (signed ones zig-zagged), floats are little-endian bit patterns,
/// strings and byte arrays are length-prefixed, keyed containers are length-prefixed lists of
/// (key, value). Every value can be skipped without knowing its type.
enum WireValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case int(Int64)
    case uint(UInt64)
    case float(Float)
    case double(Double)
    case string(String)
    case bytes([UInt8])
    case array([WireValue])
    case map([(String, WireValue)])

    enum Tag: UInt8 {
        case null = 0, `false`, `true`, int, uint, float, double, string, array, map, bytes
    }

    static func == (lhs: WireValue, rhs: WireValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): true
        case (.bool(let a), .bool(let b)): a == b
        case (.int(let a), .int(let b)): a == b
        case (.uint(let a), .uint(let b)): a == b
        case (.float(let a), .float(let b)): a.bitPattern == b.bitPattern
        case (.double(let a), .double(let b)): a.bitPattern == b.bitPattern
        case (.string(let a), .string(let b)): a == b
        case (.bytes(let a), .bytes(let b)): a == b
        case (.array(let a), .array(let b)): a == b
        case (.map(let a), .map(let b)): a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: false
        }
    }

    // MARK: Writing

    func write(to out: inout [UInt8]) {
        switch self {
        case .null: out.append(Tag.null.rawValue)
        case .bool(let value): out.append(value ? Tag.true.rawValue : Tag.false.rawValue)
        case .int(let value):
            out.append(Tag.int.rawValue)
            writeVarint(UInt64(bitPattern: (value << 1) ^ (value >> 63)), to: &out)
        case .uint(let value):
            out.append(Tag.uint.rawValue)
            writeVarint(value, to: &out)
        case .float(let value):
            out.append(Tag.float.rawValue)
            appendLittleEndian(value.bitPattern, to: &out)
        case .double(let value):
            out.append(Tag.double.rawValue)
            appendLittleEndian(value.bitPattern, to: &out)
        case .string(let value):
            out.append(Tag.string.rawValue)
            writeString(value, to: &out)
        case .bytes(let value):
            out.append(Tag.bytes.rawValue)
            writeVarint(UInt64(value.count), to: &out)
            out.append(contentsOf: value)
        case .array(let values):
            out.append(Tag.array.rawValue)
            writeVarint(UInt64(values.count), to: &out)
            for value in values { value.write(to: &out) }
        case .map(let entries):
            out.append(Tag.map.rawValue)
            writeVarint(UInt64(entries.count), to: &out)
            for (key, value) in entries {
                writeString(key, to: &out)
                value.write(to: &out)
            }
        }
    }

    // MARK: Reading

    /// Reads one value; `depth` bounds nesting so hostile input cannot exhaust the stack.
    static func read(from bytes: [UInt8], at index: inout Int, depth: Int = 0) throws(WireError) -> WireValue {
        guard depth < 512 else { throw WireError(.malformedPayload, "nested deeper than 512") }
        guard index < bytes.count, let tag = Tag(rawValue: bytes[index]) else {
            throw WireError(.malformedPayload, index < bytes.count ? "unknown tag \(bytes[index])" : "truncated")
        }
        index += 1
        switch tag {
        case .null: return .null
        case .false: return .bool(false)
        case .true: return .bool(true)
        case .int:
            let raw = try readVarint(bytes, &index)
            return .int(Int64(bitPattern: raw >> 1) ^ -Int64(bitPattern: raw & 1))
        case .uint: return .uint(try readVarint(bytes, &index))
        case .float: return .float(Float(bitPattern: try readLittleEndian(UInt32.self, bytes, &index)))
        case .double: return .double(Double(bitPattern: try readLittleEndian(UInt64.self, bytes, &index)))
        case .string: return .string(try readString(bytes, &index))
        case .bytes:
            let count = try readCount(bytes, &index, elementSize: 1)
            defer { index += count }
            return .bytes(Array(bytes[index..<index + count]))
        case .array:
            let count = try readCount(bytes, &index, elementSize: 1)
            var values: [WireValue] = []
            values.reserveCapacity(count)
            for _ in 0..<count { values.append(try read(from: bytes, at: &index, depth: depth + 1)) }
            return .array(values)
        case .map:
            let count = try readCount(bytes, &index, elementSize: 2)
            var entries: [(String, WireValue)] = []
            entries.reserveCapacity(count)
            for _ in 0..<count {
                let key = try readString(bytes, &index)
                entries.append((key, try read(from: bytes, at: &index, depth: depth + 1)))
            }
            return .map(entries)
        }
    }
}

func writeVarint(_ value: UInt64, to out: inout [UInt8]) {
    var value = value
    while value >= 0x80 {
        out.append(UInt8(truncatingIfNeeded: value) | 0x80)
        value >>= 7
    }
    out.append(UInt8(value))
}

func writeString(_ value: String, to out: inout [UInt8]) {
    let utf8 = value.utf8
    writeVarint(UInt64(utf8.count), to: &out)
    out.append(contentsOf: utf8)
}

func appendLittleEndian<T: FixedWidthInteger>(_ value: T, to out: inout [UInt8]) {
    var little = value.littleEndian
    withUnsafeBytes(of: &little) { out.append(contentsOf: $0) }
}

func readVarint(_ bytes: [UInt8], _ index: inout Int) throws(WireError) -> UInt64 {
    var result: UInt64 = 0
    var shift: UInt64 = 0
    while true {
        guard index < bytes.count else { throw WireError(.malformedPayload, "truncated varint") }
        let byte = bytes[index]
        index += 1
        guard shift < 64, shift < 63 || byte <= 1 else { throw WireError(.malformedPayload, "varint overflows 64 bits") }
        result |= UInt64(byte & 0x7F) << shift
        if byte < 0x80 { return result }
        shift += 7
    }
}

/// A count that must fit in what is left of the input (at least `elementSize` bytes per element).
func readCount(_ bytes: [UInt8], _ index: inout Int, elementSize: Int) throws(WireError) -> Int {
    let count = try readVarint(bytes, &index)
    guard count <= UInt64(bytes.count - index) / UInt64(elementSize) else {
        throw WireError(.malformedPayload, "length \(count) exceeds the payload")
    }
    return Int(count)
}

func readString(_ bytes: [UInt8], _ index: inout Int) throws(WireError) -> String {
    let count = try readCount(bytes, &index, elementSize: 1)
    defer { index += count }
    guard let string = String(validating: bytes[index..<index + count], as: UTF8.self) else {
        throw WireError(.malformedPayload, "invalid UTF-8")
    }
    return string
}

func readLittleEndian<T: FixedWidthInteger>(_: T.Type, _ bytes: [UInt8], _ index: inout Int) throws(WireError) -> T {
    let size = MemoryLayout<T>.size
    guard bytes.count - index >= size else { throw WireError(.malformedPayload, "truncated number") }
    var value: T = 0
    for offset in (0..<size).reversed() { value = value << 8 | T(bytes[index + offset]) }
    index += size
    return value
}
