import WorkersCore

/// How often a pool and its workers prove to each other that they are alive, and how long a
/// silent one is given.
///
/// Both sides send a heartbeat every `interval`, busy or idle: a worker's come from a thread of
/// its own, not from the job, so a long job keeps them going. A worker the driver hears nothing
/// from for `lostAfter` — stopped as a whole (SIGSTOP, a frozen cgroup), starved of CPU, or behind
/// a cut link — is killed and its batch retried under the pool's ``RetryPolicy`` or failed with
/// ``ProcessPoolError/Code/workerLost``. (A job that hangs while its process runs keeps the
/// heartbeats going: that is what a job's `timeout` is for.) A worker that hears nothing from its driver for
/// `lostAfter` while it waits for work exits. A worker that dies is noticed at once, by its
/// channel closing; heartbeats are for the ones that do not die.
public struct Heartbeat: Hashable, Sendable {
    /// How often each side sends one.
    public var interval: Duration
    /// How long a silent peer is given before it counts as lost.
    public var lostAfter: Duration

    /// Creates a heartbeat policy.
    ///
    /// - Parameters:
    ///   - interval: at least 1 ms (a precondition naming `interval`).
    ///   - lostAfter: more than `interval` (a precondition naming `lostAfter`); a few intervals,
    ///     so one late heartbeat on a busy machine is not a loss.
    public init(interval: Duration, lostAfter: Duration) {
        precondition(interval >= .milliseconds(1), "interval must be at least 1 ms (got \(interval))")
        precondition(lostAfter > interval, "lostAfter must be longer than interval (got \(lostAfter) ≤ \(interval))")
        self.interval = interval
        self.lostAfter = lostAfter
    }

    /// Every second; lost after 10 s of silence. The default.
    public static let standard = Heartbeat(interval: .seconds(1), lostAfter: .seconds(10))

    package var intervalMilliseconds: Int { Int(interval.saturatingNanoseconds / 1_000_000) }
    package var lostAfterMilliseconds: Int { Int(lostAfter.saturatingNanoseconds / 1_000_000) }
}
