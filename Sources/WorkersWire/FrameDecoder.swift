/// Cuts a byte stream into ``Frame``s, however the bytes arrive: one at a time, in random splits,
/// or many frames at once.
///
/// It never reads past what it was fed and never allocates more than `maxFrameSize` for a frame:
/// a length over the limit is an error as soon as the 4-byte prefix is in, before any payload.
/// After an error the stream is unusable (its framing is lost): close the channel.
public struct FrameDecoder: Sendable {
    /// The largest frame accepted, counting kind, request id and payload.
    public let maxFrameSize: Int
    private var buffer: [UInt8] = []
    private var readIndex = 0
    private var failed: WireError?

    /// Creates a decoder.
    ///
    /// - Parameter maxFrameSize: at least ``Frame/headerSize`` (a precondition naming `maxFrameSize`).
    public init(maxFrameSize: Int = WireProtocol.defaultMaxFrameSize) {
        precondition(maxFrameSize >= Frame.headerSize, "maxFrameSize must be at least \(Frame.headerSize) (got \(maxFrameSize))")
        self.maxFrameSize = maxFrameSize
    }

    /// Bytes fed and not yet returned as frames.
    public var bufferedByteCount: Int { buffer.count - readIndex }

    /// Appends received bytes.
    public mutating func feed(_ bytes: some Sequence<UInt8>) {
        buffer.append(contentsOf: bytes)
    }

    /// The next complete frame, or `nil` until more bytes arrive.
    ///
    /// - Throws: ``WireError`` with `.badFrameLength` or `.unknownFrameKind`; once thrown, every
    ///   later call throws the same error.
    public mutating func next() throws(WireError) -> Frame? {
        if let failed { throw failed }
        let available = buffer.count - readIndex
        guard available >= 4 else { return compactIfDrained() }
        let length = Int(readBigEndian(UInt32.self, from: buffer[readIndex..<readIndex + 4]))
        guard length >= Frame.headerSize, length <= maxFrameSize else {
            return try fail(WireError(.badFrameLength(length: length, limit: maxFrameSize)))
        }
        guard available >= 4 + length else { return nil }
        let start = readIndex + 4
        let kindByte = buffer[start]
        guard let kind = Frame.Kind(rawValue: kindByte) else {
            return try fail(WireError(.unknownFrameKind(kindByte)))
        }
        let requestID = readBigEndian(UInt64.self, from: buffer[start + 1..<start + 9])
        let payload = Array(buffer[start + 9..<start + length])
        readIndex = start + length
        _ = compactIfDrained()
        return Frame(kind: kind, requestID: requestID, payload: payload)
    }

    private mutating func fail(_ error: WireError) throws(WireError) -> Frame? {
        failed = error
        throw error
    }

    /// Drops consumed bytes once they are most of the buffer.
    private mutating func compactIfDrained() -> Frame? {
        if readIndex == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            readIndex = 0
        } else if readIndex > 4096, readIndex * 2 > buffer.count {
            buffer.removeFirst(readIndex)
            readIndex = 0
        }
        return nil
    }
}
