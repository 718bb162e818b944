/// Decodes values written by ``WireEncoder``.
///
/// Hostile bytes are a `DecodingError` or ``WireError`` with `.malformedPayload`, never a crash:
/// lengths are checked against what is left of the input and nesting is bounded.
public struct WireDecoder: Sendable {
    /// Creates a decoder.
    public init() {}

    /// Decodes a `T` from `bytes`.
    ///
    /// - Throws: ``WireError`` (`.malformedPayload`) for bytes that are not a wire value, or
    ///   `DecodingError` for a value of the wrong shape.
    public func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        if let array = type as? any WireScalarArray.Type {
            // The fast path; anything it does not take whole goes the general way, which gives
            // the precise error.
            var index = 0
            if let values = try? array.readWireArray(bytes, &index), index == bytes.count { return values as! T }
        }
        var index = 0
        let value = try WireValue.read(from: bytes, at: &index)
        guard index == bytes.count else { throw WireError(.malformedPayload, "\(bytes.count - index) trailing bytes") }
        if let message = type as? any DirectWireMessage.Type {
            return try message.init(wireValue: value) as! T
        }
        return try Self.decode(type, from: value, codingPath: [])
    }

    static func decode<T: Decodable>(_ type: T.Type, from value: WireValue, codingPath: [any CodingKey]) throws -> T {
        if T.self == [UInt8].self, case .bytes(let bytes) = value {
            return unsafeBitCast(bytes, to: T.self)
        }
        return try T(from: WireDecoding(value: value, codingPath: codingPath))
    }
}

struct WireDecoding: Decoder {
    let value: WireValue
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .map(let entries) = value else { throw mismatch([String: Int].self, value, codingPath) }
        return KeyedDecodingContainer(KeyedContainer<Key>(entries: entries, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        switch value {
        case .array(let values): return UnkeyedContainer(values: values, codingPath: codingPath)
        case .bytes(let bytes): return UnkeyedContainer(values: bytes.map { .uint(UInt64($0)) }, codingPath: codingPath)
        default: throw mismatch([Int].self, value, codingPath)
        }
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        SingleContainer(value: value, codingPath: codingPath)
    }

    /// Records have few keys: a linear search beats hashing them into a dictionary; large maps
    /// (dictionaries) get an index.
    struct KeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
        let entries: [(String, WireValue)]
        let index: [String: Int]?
        let codingPath: [any CodingKey]

        init(entries: [(String, WireValue)], codingPath: [any CodingKey]) {
            self.entries = entries
            self.codingPath = codingPath
            if entries.count > 16 {
                var index: [String: Int] = [:]
                for (offset, entry) in entries.enumerated() where index[entry.0] == nil { index[entry.0] = offset }
                self.index = index
            } else {
                self.index = nil
            }
        }

        var allKeys: [Key] { entries.compactMap { Key(stringValue: $0.0) } }

        private func lookup(_ key: String) -> WireValue? {
            if let index { return index[key].map { entries[$0].1 } }
            return entries.first { $0.0 == key }?.1
        }

        func contains(_ key: Key) -> Bool { lookup(key.stringValue) != nil }

        private func value(for key: Key) throws -> WireValue {
            guard let value = lookup(key.stringValue) else {
                throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "no value for \(key.stringValue)"))
            }
            return value
        }

        func decodeNil(forKey key: Key) throws -> Bool { try value(for: key) == .null }
        func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
            try WireDecoder.decode(type, from: value(for: key), codingPath: codingPath + [key])
        }
        func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
            try WireDecoding(value: value(for: key), codingPath: codingPath + [key]).container(keyedBy: type)
        }
        func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
            try WireDecoding(value: value(for: key), codingPath: codingPath + [key]).unkeyedContainer()
        }
        func superDecoder() throws -> any Decoder { WireDecoding(value: lookup("super") ?? .null, codingPath: codingPath) }
        func superDecoder(forKey key: Key) throws -> any Decoder { WireDecoding(value: try value(for: key), codingPath: codingPath + [key]) }
    }

    struct UnkeyedContainer: UnkeyedDecodingContainer {
        let values: [WireValue]
        let codingPath: [any CodingKey]
        var currentIndex = 0
        var count: Int? { values.count }
        var isAtEnd: Bool { currentIndex >= values.count }

        private mutating func next() throws -> WireValue {
            guard !isAtEnd else {
                throw DecodingError.valueNotFound(WireValue.self, .init(codingPath: codingPath, debugDescription: "unkeyed container is at its end"))
            }
            defer { currentIndex += 1 }
            return values[currentIndex]
        }

        mutating func decodeNil() throws -> Bool {
            guard !isAtEnd, values[currentIndex] == .null else { return false }
            currentIndex += 1
            return true
        }
        mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
            try WireDecoder.decode(type, from: next(), codingPath: codingPath)
        }
        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
            try WireDecoding(value: next(), codingPath: codingPath).container(keyedBy: type)
        }
        mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
            try WireDecoding(value: next(), codingPath: codingPath).unkeyedContainer()
        }
        mutating func superDecoder() throws -> any Decoder { WireDecoding(value: try next(), codingPath: codingPath) }
    }

    struct SingleContainer: SingleValueDecodingContainer {
        let value: WireValue
        let codingPath: [any CodingKey]

        func decodeNil() -> Bool { value == .null }
        func decode(_ type: Bool.Type) throws -> Bool {
            guard case .bool(let bool) = value else { throw mismatch(type, value, codingPath) }
            return bool
        }
        func decode(_ type: String.Type) throws -> String {
            guard case .string(let string) = value else { throw mismatch(type, value, codingPath) }
            return string
        }
        func decode(_ type: Double.Type) throws -> Double {
            switch value {
            case .double(let double): return double
            case .float(let float): return Double(float)
            default: throw mismatch(type, value, codingPath)
            }
        }
        func decode(_ type: Float.Type) throws -> Float {
            switch value {
            case .float(let float): return float
            case .double(let double): return Float(double)
            default: throw mismatch(type, value, codingPath)
            }
        }
        func decode(_ type: Int.Type) throws -> Int { try integer(type) }
        func decode(_ type: Int8.Type) throws -> Int8 { try integer(type) }
        func decode(_ type: Int16.Type) throws -> Int16 { try integer(type) }
        func decode(_ type: Int32.Type) throws -> Int32 { try integer(type) }
        func decode(_ type: Int64.Type) throws -> Int64 { try integer(type) }
        func decode(_ type: UInt.Type) throws -> UInt { try integer(type) }
        func decode(_ type: UInt8.Type) throws -> UInt8 { try integer(type) }
        func decode(_ type: UInt16.Type) throws -> UInt16 { try integer(type) }
        func decode(_ type: UInt32.Type) throws -> UInt32 { try integer(type) }
        func decode(_ type: UInt64.Type) throws -> UInt64 { try integer(type) }
        func decode<T: Decodable>(_ type: T.Type) throws -> T {
            try WireDecoder.decode(type, from: value, codingPath: codingPath)
        }

        private func integer<T: FixedWidthInteger>(_ type: T.Type) throws -> T {
            let result: T?
            switch value {
            case .int(let int): result = T(exactly: int)
            case .uint(let uint): result = T(exactly: uint)
            default: throw mismatch(type, value, codingPath)
            }
            guard let result else {
                throw DecodingError.dataCorrupted(.init(codingPath: codingPath, debugDescription: "\(value) does not fit in \(T.self)"))
            }
            return result
        }
    }
}

private func mismatch(_ type: Any.Type, _ value: WireValue, _ codingPath: [any CodingKey]) -> DecodingError {
    DecodingError.typeMismatch(type, .init(codingPath: codingPath, debugDescription: "found \(value)"))
}
