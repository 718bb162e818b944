import Crypto
import WorkersWire

/// One frame on a driver–agent link: `length: UInt32 | kind: UInt8 | channel: UInt32 | payload |
/// MAC (16 bytes, after authentication)`, big-endian, where `length` counts everything after
/// itself. A channel is one worker slot on the agent; its data frames carry that worker's own
/// frame stream (``WorkersWire/Frame``) unchanged, so the pool's handshake, heartbeats and
/// batches run end to end between the driver's slot and the remote worker.
struct LinkFrame: Hashable, Sendable {
    enum Kind: UInt8, Sendable, CaseIterable {
        /// Agent → driver, first: versions, nonce, host, slots, digests (``ConnectMessage``).
        case connect = 1
        /// Driver → agent: the driver's nonce and its proof of the key (``ChallengeMessage``).
        case challenge = 2
        /// Agent → driver: the agent's proof of the key (``ProofMessage``).
        case proof = 3
        /// Driver → agent, the first authenticated frame: the link's parameters (``AcceptMessage``).
        case accept = 4
        /// Either way: refused; the payload is a ``RejectMessage``. Then the link closes.
        case reject = 5
        /// Either way, every heartbeat interval; from the agent it carries its workers' memory.
        case heartbeat = 6
        /// Driver → agent: start a worker in slot `channel`.
        case open = 7
        /// Either way: bytes of slot `channel`'s worker stream.
        case data = 8
        /// Agent → driver: slot `channel`'s worker ended (``ChannelClosed``). Driver → agent:
        /// end it now.
        case closed = 9
        /// Driver → agent: finish the running batches, take no more, then leave.
        case drain = 10
        /// Agent → driver: this agent is draining (a walltime, `SIGTERM`, `SIGUSR1`); each slot
        /// closes after its batch, and no batch it had not answered counts as an attempt.
        case retire = 11
        /// Driver → agent: the pool is done; stop the workers and exit.
        case goodbye = 12
    }

    var kind: Kind
    var channel: UInt32
    var payload: [UInt8]

    init(_ kind: Kind, channel: UInt32 = 0, payload: [UInt8] = []) {
        self.kind = kind
        self.channel = channel
        self.payload = payload
    }

    init<M: Encodable>(_ kind: Kind, channel: UInt32 = 0, message: M) throws {
        self.init(kind, channel: channel, payload: try WireEncoder().encode(message))
    }

    func decode<M: Decodable>(_ type: M.Type) throws(ClusterError) -> M {
        do {
            return try WireDecoder().decode(M.self, from: payload)
        } catch {
            throw ClusterError(.protocolViolation, "a \(kind) frame that does not decode: \(error)")
        }
    }

    /// Bytes of the header after the length: kind and channel.
    static let headerSize = 5
    /// Bytes of the truncated HMAC-SHA256 on every authenticated frame.
    static let macSize = 16
    /// The largest frame before authentication: nothing unauthenticated gets to make the
    /// driver allocate more.
    static let maxUnauthenticatedSize = 4096
}

/// The sending half of a link: frames out, each sealed with its MAC once the session key is set.
struct LinkSealer: Sendable {
    private var sendableKey: SendableKey?
    private var key: SymmetricKey? { sendableKey?.key }
    private var sequence: UInt64 = 0
    let maxFrameSize: Int

    init(maxFrameSize: Int) {
        self.maxFrameSize = maxFrameSize
    }

    /// From now on every frame carries a MAC under `key`, numbered from 0.
    mutating func authenticate(with key: SymmetricKey) {
        sendableKey = SendableKey(key: key)
        sequence = 0
    }

    /// Appends the frame's wire form to `buffer`.
    mutating func seal(_ kind: LinkFrame.Kind, channel: UInt32, payload: UnsafeRawBufferPointer, into buffer: inout [UInt8]) {
        seal(kind, channel: channel, payload: payload, more: UnsafeRawBufferPointer(start: nil, count: 0), into: &buffer)
    }

    /// Appends a frame whose payload is `payload` followed by `more`.
    mutating func seal(_ kind: LinkFrame.Kind, channel: UInt32, payload: UnsafeRawBufferPointer, more: UnsafeRawBufferPointer, into buffer: inout [UInt8]) {
        let macSize = key == nil ? 0 : LinkFrame.macSize
        let length = LinkFrame.headerSize + payload.count + more.count + macSize
        precondition(length <= maxFrameSize + LinkFrame.headerSize + LinkFrame.macSize, "a link frame over the limit")
        let start = buffer.count
        appendBigEndian(UInt32(length), to: &buffer)
        buffer.append(kind.rawValue)
        appendBigEndian(channel, to: &buffer)
        buffer.append(contentsOf: payload)
        buffer.append(contentsOf: more)
        if let key {
            let headerEnd = start + 4 + LinkFrame.headerSize
            let mac = buffer.withUnsafeBytes { raw in
                LinkMAC.compute(key: key, sequence: sequence, header: buffer[start..<headerEnd], payload: UnsafeRawBufferPointer(rebasing: raw[headerEnd...]))
            }
            buffer.append(contentsOf: mac)
            sequence &+= 1
        }
    }

    mutating func seal(_ frame: LinkFrame, into buffer: inout [UInt8]) {
        frame.payload.withUnsafeBytes { seal(frame.kind, channel: frame.channel, payload: $0, into: &buffer) }
    }
}

/// The receiving half: bytes in, frames out, each MAC checked (and its sequence number, so a
/// dropped, repeated or reordered frame fails too) once the session key is set.
struct LinkOpener: Sendable {
    private var buffer: [UInt8] = []
    private var readIndex = 0
    private var sendableKey: SendableKey?
    private var key: SymmetricKey? { sendableKey?.key }
    private var sequence: UInt64 = 0
    let maxFrameSize: Int

    init(maxFrameSize: Int) {
        self.maxFrameSize = maxFrameSize
    }

    mutating func authenticate(with key: SymmetricKey) {
        sendableKey = SendableKey(key: key)
        sequence = 0
    }

    var isAuthenticated: Bool { key != nil }

    mutating func feed(_ bytes: UnsafeRawBufferPointer) {
        if readIndex > 0 && readIndex == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            readIndex = 0
        } else if readIndex > 1 << 20 {
            buffer.removeSubrange(0..<readIndex)
            readIndex = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next whole frame, or `nil` until more bytes come.
    ///
    /// - Throws: ``ClusterError`` `.protocolViolation` for a length out of bounds (before
    ///   authentication, anything over 4 KiB: an HTTP request is refused on its first bytes), an
    ///   unknown kind, or a MAC that does not verify.
    mutating func next() throws(ClusterError) -> LinkFrame? {
        let available = buffer.count - readIndex
        guard available >= 4 else { return nil }
        let length = Int(readBigEndian(UInt32.self, from: buffer[readIndex..<(readIndex + 4)]))
        let macSize = key == nil ? 0 : LinkFrame.macSize
        let limit = key == nil ? LinkFrame.maxUnauthenticatedSize : maxFrameSize + LinkFrame.headerSize + macSize
        guard length >= LinkFrame.headerSize + macSize, length <= limit else {
            let first = buffer[readIndex..<(readIndex + min(available, 8))]
            let printable = String(decoding: first.map { (0x20..<0x7F).contains($0) ? $0 : 0x2E }, as: UTF8.self)
            throw ClusterError(.protocolViolation, "a link frame of length \(length) (limit \(limit)); first bytes \"\(printable)\": not a swift-workers peer, or a corrupted stream")
        }
        guard available >= 4 + length else { return nil }
        let start = readIndex
        let headerEnd = start + 4 + LinkFrame.headerSize
        let payloadEnd = start + 4 + length - macSize
        guard let kind = LinkFrame.Kind(rawValue: buffer[start + 4]) else {
            throw ClusterError(.protocolViolation, "a link frame of unknown kind \(buffer[start + 4])")
        }
        let channel = readBigEndian(UInt32.self, from: buffer[(start + 5)..<headerEnd])
        if let key {
            let valid = buffer.withUnsafeBytes { raw in
                let expected = LinkMAC.compute(
                    key: key, sequence: sequence, header: buffer[start..<headerEnd],
                    payload: UnsafeRawBufferPointer(rebasing: raw[headerEnd..<payloadEnd])
                )
                return LinkMAC.equal(expected, raw[payloadEnd..<(payloadEnd + macSize)])
            }
            guard valid else {
                throw ClusterError(.protocolViolation, "frame \(sequence) (\(kind)) fails its MAC: altered, injected, replayed or out of order")
            }
            sequence &+= 1
        }
        readIndex = start + 4 + length
        return LinkFrame(kind, channel: channel, payload: Array(buffer[headerEnd..<payloadEnd]))
    }
}

/// The MAC of a link frame: HMAC-SHA256 under the direction's session key, of the sequence
/// number, the header and the payload, truncated to 16 bytes.
enum LinkMAC {
    static func compute(key: SymmetricKey, sequence: UInt64, header: ArraySlice<UInt8>, payload: UnsafeRawBufferPointer) -> [UInt8] {
        var hmac = HMAC<SHA256>(key: key)
        var big = sequence.bigEndian
        withUnsafeBytes(of: &big) { hmac.update(data: $0) }
        header.withUnsafeBytes { hmac.update(data: $0) }
        hmac.update(data: payload)
        return Array(hmac.finalize()).prefix(LinkFrame.macSize).map { $0 }
    }

    /// Constant-time comparison.
    static func equal(_ expected: [UInt8], _ received: Slice<UnsafeRawBufferPointer>) -> Bool {
        guard expected.count == received.count else { return false }
        var difference: UInt8 = 0
        for (a, b) in zip(expected, received) { difference |= a ^ b }
        return difference == 0
    }
}
