/// Whether a batch whose worker was lost is run again on a fresh worker.
///
/// A job that *throws* has answered and is never retried: only a worker that died under the batch
/// (a trap, an exit, a kill, garbage on the wire), one that fell silent (`.workerLost`) and, if
/// asked, a time-out count.
public struct RetryPolicy: Hashable, Sendable {
    /// Most attempts per batch, the first included; 1 means no retry.
    public var maxAttempts: Int
    /// Whether a batch that ran past its time-out is retried too.
    public var retriesTimeouts: Bool

    /// Creates a policy.
    ///
    /// - Parameters:
    ///   - maxAttempts: at least 1 (a precondition naming `maxAttempts`).
    ///   - retriesTimeouts: also retry batches that timed out; default `false`.
    public init(maxAttempts: Int, retriesTimeouts: Bool = false) {
        precondition(maxAttempts >= 1, "maxAttempts must be at least 1 (got \(maxAttempts))")
        self.maxAttempts = maxAttempts
        self.retriesTimeouts = retriesTimeouts
    }

    /// No retry: a lost worker fails the batch it held. The default.
    public static let none = RetryPolicy(maxAttempts: 1)

    /// Whether a batch that failed its `attempt`-th try (1-based) with `code` runs again.
    func retries(after attempt: Int, _ code: ProcessPoolError.Code) -> Bool {
        guard attempt < maxAttempts else { return false }
        switch code {
        case .workerCrashed, .protocolViolation, .workerLost: return true
        case .timedOut: return retriesTimeouts
        case .shutDown, .jobFailed, .unknownJob, .spawnFailed, .resourceLimit, .placementFailed: return false
        }
    }
}
