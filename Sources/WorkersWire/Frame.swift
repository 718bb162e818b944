/// One message on a worker channel: a kind, the id of the request it belongs to, and a payload.
///
/// On the wire a frame is `length: UInt32 (big-endian) | kind: UInt8 | requestID: UInt64
/// (big-endian) | payload`, where `length` counts everything after itself. Nothing in it assumes the
/// peer is local: the same bytes run over a pipe today and over TCP later.
public struct Frame: Hashable, Sendable {
    /// What a frame is for.
    public enum Kind: UInt8, Hashable, Sendable, CaseIterable {
        /// Driver → worker: protocol version and the jobs the driver will send (``Hello``).
        case hello = 1
        /// Worker → driver: the handshake succeeded (``Welcome``).
        case welcome = 2
        /// Either way: the handshake failed; the payload says why (UTF-8).
        case reject = 3
        /// Driver → worker: run a job on a batch of inputs (``Submit``).
        case submit = 4
        /// Worker → driver: the outputs of a batch, in order (``Outputs``).
        case result = 5
        /// Worker → driver: a job threw (``JobFailure``).
        case failure = 6
        /// Driver → worker: no more work; exit after the current batch.
        case goodbye = 7
        /// Either way, every agreed interval (``Hello/heartbeatMilliseconds``), busy or idle: the
        /// sender is alive. Empty payload, request id 0. A peer silent for ``Hello/lostAfterMilliseconds``
        /// is lost. (Protocol version 2.)
        case heartbeat = 8
    }

    /// The size of the fixed part after the length prefix: kind and request id.
    public static let headerSize = 9

    /// What the frame is for.
    public var kind: Kind
    /// The request this frame belongs to (0 for handshake and goodbye).
    public var requestID: UInt64
    /// The encoded message.
    public var payload: [UInt8]

    /// Creates a frame.
    public init(kind: Kind, requestID: UInt64 = 0, payload: [UInt8] = []) {
        self.kind = kind
        self.requestID = requestID
        self.payload = payload
    }

    /// Appends the frame's wire form to `buffer`.
    ///
    /// - Throws: ``WireError`` with `.badFrameLength` if the frame is over `maxFrameSize`: the
    ///   sender enforces the limit as the receiver does.
    public func encode(into buffer: inout [UInt8], maxFrameSize: Int = WireProtocol.defaultMaxFrameSize) throws(WireError) {
        let length = Self.headerSize + payload.count
        guard length <= maxFrameSize, length <= Int(UInt32.max) else {
            throw WireError(.badFrameLength(length: length, limit: maxFrameSize), "refusing to send")
        }
        buffer.reserveCapacity(buffer.count + 4 + length)
        appendBigEndian(UInt32(length), to: &buffer)
        buffer.append(kind.rawValue)
        appendBigEndian(requestID, to: &buffer)
        buffer.append(contentsOf: payload)
    }

    /// The frame's wire form.
    public func encoded(maxFrameSize: Int = WireProtocol.defaultMaxFrameSize) throws(WireError) -> [UInt8] {
        var buffer: [UInt8] = []
        try encode(into: &buffer, maxFrameSize: maxFrameSize)
        return buffer
    }
}

/// Constants both sides agree on.
public enum WireProtocol {
    /// This build's protocol version; the handshake refuses any other. Version 2 added
    /// heartbeats (``Frame/Kind/heartbeat``, agreed in ``Hello`` and ``Welcome``).
    public static let version: UInt16 = 2
    /// The default largest frame, on both sides: 64 MiB.
    public static let defaultMaxFrameSize = 64 << 20
}

@inline(__always)
package func appendBigEndian<T: FixedWidthInteger>(_ value: T, to buffer: inout [UInt8]) {
    var big = value.bigEndian
    withUnsafeBytes(of: &big) { buffer.append(contentsOf: $0) }
}

@inline(__always)
package func readBigEndian<T: FixedWidthInteger>(_: T.Type, from bytes: ArraySlice<UInt8>) -> T {
    var value: T = 0
    for byte in bytes { value = value << 8 | T(byte) }
    return value
}
