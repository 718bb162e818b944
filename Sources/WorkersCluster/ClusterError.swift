/// An error of a cluster link, its key, or a placement; switch on ``code``.
public struct ClusterError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong.
    public enum Code: Hashable, Sendable {
        /// The key file is missing, unreadable, or not private (mode, owner, directory); the
        /// detail names the path and the problem.
        case keyFile
        /// The peer could not prove it holds the pool key, or its proof was a replay.
        case authenticationFailed
        /// The two sides speak different link protocols; the detail has both versions.
        case versionMismatch
        /// The agent's program knows other jobs; the detail has both digests.
        case jobSetMismatch
        /// The agent runs another build of the program; the detail has both SHA-256 digests.
        case buildMismatch
        /// The peer broke the link protocol: a bad length, a frame of the wrong kind, a MAC that
        /// does not verify (a flipped byte, an injected or replayed frame).
        case protocolViolation
        /// No connection: refused, unreachable, or not within the connect time-out; the detail
        /// names the address and port.
        case connectFailed
        /// A launcher command (`srun`, `sbatch`, `ssh`) failed; the detail has its words.
        case launchFailed
        /// The link went silent or closed.
        case linkLost
    }

    /// What went wrong.
    public var code: Code
    /// The particulars: paths, addresses, both sides' values.
    public var detail: String

    /// Creates an error.
    public init(_ code: Code, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    /// The code and the detail.
    public var description: String { "ClusterError.\(code): \(detail)" }
}
