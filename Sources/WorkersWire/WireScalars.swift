/// Arrays of numbers, booleans and strings — the usual inputs and outputs of a batch of jobs —
/// are written and read straight to and from bytes, in exactly the form the general coder
/// gives them, without building a value tree per element. `workers-bench wire` measures it.
protocol WireScalar {
    func writeWire(to out: inout [UInt8])
    static func readWire(_ bytes: [UInt8], _ index: inout Int) throws(WireError) -> Self
}

/// An array the fast path can take whole.
protocol WireScalarArray {
    func writeWireArray(to out: inout [UInt8])
    static func readWireArray(_ bytes: [UInt8], _ index: inout Int) throws(WireError) -> Self
}

extension Array: WireScalarArray where Element: WireScalar {
    func writeWireArray(to out: inout [UInt8]) {
        out.reserveCapacity(out.count + 2 + count * 3)
        out.append(WireValue.Tag.array.rawValue)
        writeVarint(UInt64(count), to: &out)
        for element in self { element.writeWire(to: &out) }
    }

    static func readWireArray(_ bytes: [UInt8], _ index: inout Int) throws(WireError) -> [Element] {
        try expectTag(.array, bytes, &index)
        let count = try readCount(bytes, &index, elementSize: 1)
        var values: [Element] = []
        values.reserveCapacity(count)
        for _ in 0..<count { values.append(try Element.readWire(bytes, &index)) }
        return values
    }
}

private func expectTag(_ tag: WireValue.Tag, _ bytes: [UInt8], _ index: inout Int) throws(WireError) {
    guard index < bytes.count else { throw WireError(.malformedPayload, "truncated") }
    guard bytes[index] == tag.rawValue else {
        throw WireError(.malformedPayload, "expected \(tag), found tag \(bytes[index])")
    }
    index += 1
}

/// Signed integers: zig-zag varints under the `int` tag, as `WireValue.int`.
protocol WireSignedScalar: WireScalar, FixedWidthInteger, SignedInteger {}

extension WireSignedScalar {
    func writeWire(to out: inout [UInt8]) {
        out.append(WireValue.Tag.int.rawValue)
        let value = Int64(self)
        writeVarint(UInt64(bitPattern: (value << 1) ^ (value >> 63)), to: &out)
    }

    static func readWire(_ bytes: [UInt8], _ index: inout Int) throws(WireError) -> Self {
        guard index < bytes.count else { throw WireError(.malformedPayload, "truncated") }
        let value: Int64
        switch bytes[index] {
        case WireValue.Tag.int.rawValue:
            index += 1
            let raw = try readVarint(bytes, &index)
            value = Int64(bitPattern: raw >> 1) ^ -Int64(bitPattern: raw & 1)
        case WireValue.Tag.uint.rawValue:
            index += 1
            let raw = try readVarint(bytes, &index)
            guard raw <= UInt64(Int64.max) else { throw WireError(.malformedPayload, "\(raw) does not fit in \(Self.self)") }
            value = Int64(raw)
        default:
            throw WireError(.malformedPayload, "expected an integer, found tag \(bytes[index])")
        }
        guard let exact = Self(exactly: value) else { throw WireError(.malformedPayload, "\(value) does not fit in \(Self.self)") }
        return exact
    }
}

/// Unsigned integers: varints under the `uint` tag, as `WireValue.uint`.
protocol WireUnsignedScalar: WireScalar, FixedWidthInteger, UnsignedInteger {}

extension WireUnsignedScalar {
    func writeWire(to out: inout [UInt8]) {
        out.append(WireValue.Tag.uint.rawValue)
        writeVarint(UInt64(self), to: &out)
    }

    static func readWire(_ bytes: [UInt8], _ index: inout Int) throws(WireError) -> Self {
        guard index < bytes.count else { throw WireError(.malformedPayload, "truncated") }
        let value: UInt64
        switch bytes[index] {
        case WireValue.Tag.uint.rawValue:
            index += 1
            value = try readVarint(bytes, &index)
        case WireValue.Tag.int.rawValue:
            index += 1
            let raw = try readVarint(bytes, &index)
            let signed = Int64(bitPattern: raw >> 1) ^ -Int64(bitPattern: raw & 1)
            guard signed >= 0 else { throw WireError(.malformedPayload, "\(signed) does not fit in \(Self.self)") }
            value = UInt64(signed)
        default:
            throw WireError(.malformedPayload, "expected an integer, found tag \(bytes[index])")
        }
        guard let exact = Self(exactly: value) else { throw WireError(.malformedPayload, "\(value) does not fit in \(Self.self)") }
        return exact
    }
}

extension Int: WireSignedScalar {}
extension Int64: WireSignedScalar {}
extension Int32: WireSignedScalar {}
extension Int16: WireSignedScalar {}
extension Int8: WireSignedScalar {}
extension UInt: WireUnsignedScalar {}
extension UInt64: WireUnsignedScalar {}
extension UInt32: WireUnsignedScalar {}
extension UInt16: WireUnsignedScalar {}
// UInt8 is left out: `[UInt8]` travels as one `bytes` value.

extension Bool: WireScalar {
    func writeWire(to out: inout [UInt8]) {
        out.append(self ? WireValue.Tag.true.rawValue : WireValue.Tag.false.rawValue)
    }

    static func readWire(_ bytes: [UInt8], _ index: inout Int) throws(WireError) -> Bool {
        guard index < bytes.count else { throw WireError(.malformedPayload, "truncated") }
        defer { index += 1 }
        switch bytes[index] {
        case WireValue.Tag.true.rawValue: return true
        case WireValue.Tag.false.rawValue: return false
        default: throw WireError(.malformedPayload, "expected a boolean, found tag \(bytes[index])")
        }
    }
}

extension Double: WireScalar {
    func writeWire(to out: inout [UInt8]) {
        out.append(WireValue.Tag.double.rawValue)
        appendLittleEndian(bitPattern, to: &out)
    }

    static func readWire(_ bytes: [UInt8], _ index: inout Int) throws(WireError) -> Double {
        guard index < bytes.count else { throw WireError(.malformedPayload, "truncated") }
        switch bytes[index] {
        case WireValue.Tag.double.rawValue:
            index += 1
            return Double(bitPattern: try readLittleEndian(UInt64.self, bytes, &index))
        case WireValue.Tag.float.rawValue:
            index += 1
            return Double(Float(bitPattern: try readLittleEndian(UInt32.self, bytes, &index)))
        default:
            throw WireError(.malformedPayload, "expected a number, found tag \(bytes[index])")
        }
    }
}

extension String: WireScalar {
    func writeWire(to out: inout [UInt8]) {
        out.append(WireValue.Tag.string.rawValue)
        writeString(self, to: &out)
    }

    static func readWire(_ bytes: [UInt8], _ index: inout Int) throws(WireError) -> String {
        try expectTag(.string, bytes, &index)
        return try readString(bytes, &index)
    }
}
