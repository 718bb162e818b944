/// A violation of the wire protocol: a frame or payload that cannot be what the peer claims.
///
/// A pool treats any of these from a worker as `.protocolViolation`: the worker is killed, never
/// trusted further, and the driver carries on.
public struct WireError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What was wrong; switch on it.
    public enum Code: Hashable, Sendable {
        /// A frame announced a length over the limit (or too short to hold a header).
        case badFrameLength(length: Int, limit: Int)
        /// A frame's kind byte is not one this version knows.
        case unknownFrameKind(UInt8)
        /// A payload did not decode as the type it should hold.
        case malformedPayload
        /// The peer speaks another protocol version.
        case versionMismatch(local: UInt16, remote: UInt16)
        /// The peer does not know jobs this side needs.
        case unknownJobs([String])
        /// A frame arrived that the protocol does not allow at this point.
        case unexpectedFrame(Frame.Kind)
    }

    /// What was wrong.
    public var code: Code
    /// More detail, for people.
    public var detail: String

    /// Creates an error.
    public init(_ code: Code, _ detail: String = "") {
        self.code = code
        self.detail = detail
    }

    /// The code and the detail, in words.
    public var description: String {
        let what: String
        switch code {
        case .badFrameLength(let length, let limit): what = "frame length \(length) outside 9...\(limit)"
        case .unknownFrameKind(let kind): what = "unknown frame kind \(kind)"
        case .malformedPayload: what = "malformed payload"
        case .versionMismatch(let local, let remote): what = "protocol version \(remote), expected \(local)"
        case .unknownJobs(let names): what = "peer does not know jobs \(names.joined(separator: ", "))"
        case .unexpectedFrame(let kind): what = "unexpected \(kind) frame"
        }
        return detail.isEmpty ? "WireError: \(what)" : "WireError: \(what): \(detail)"
    }
}
