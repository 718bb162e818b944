/// An error from a ``ProcessPool``; switch on ``code``.
public struct ProcessPoolError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong.
    public enum Code: Hashable, Sendable {
        /// The pool is shutting down or shut down.
        case shutDown
        /// The worker running the job died: by `signal` (e.g. 4 for a Swift trap, 9 for a kill), or
        /// by exiting with `exitCode`.
        case workerCrashed(signal: Int32?, exitCode: Int32?)
        /// The job ran past its timeout; its worker was killed and replaced.
        case timedOut
        /// The worker's resident memory passed the pool's `memoryLimit`; it was killed and replaced.
        case resourceLimit
        /// The worker broke the wire protocol (garbage, an oversized frame); it was killed.
        case protocolViolation(String)
        /// The job threw in the worker.
        case jobFailed(type: String, message: String)
        /// The worker does not know the job.
        case unknownJob
        /// A worker could not be started.
        case spawnFailed(errno: Int32)
        /// The worker fell silent: no frame, not even a heartbeat, for the pool's
        /// ``Heartbeat/lostAfter`` (a stopped process, or later a cut link). It was killed. A job
        /// that hangs while its worker's heartbeat thread runs is not lost: give it a `timeout`.
        case workerLost
        /// The pool's placement could not start or reach its workers: an agent that never
        /// connected, a launcher command that failed, no agent left to run on. The text names the
        /// address, port and hosts involved.
        case placementFailed(String)
    }

    /// What went wrong.
    public var code: Code
    /// The job's wire name, where the error concerns a job.
    public var jobName: String?
    /// The input's index in a `map`, where the error concerns one input.
    public var inputIndex: Int?

    /// Creates an error.
    public init(_ code: Code, jobName: String? = nil, inputIndex: Int? = nil) {
        self.code = code
        self.jobName = jobName
        self.inputIndex = inputIndex
    }

    /// The code in words, with the job and input when set.
    public var description: String {
        var text: String
        switch code {
        case .shutDown: text = "ProcessPoolError.shutDown: the pool takes no new work"
        case .workerCrashed(let signal?, _): text = "ProcessPoolError.workerCrashed: the worker died of signal \(signal)"
        case .workerCrashed(_, let exitCode): text = "ProcessPoolError.workerCrashed: the worker exited with status \(exitCode ?? -1)"
        case .timedOut: text = "ProcessPoolError.timedOut: the job ran past its timeout"
        case .resourceLimit: text = "ProcessPoolError.resourceLimit: the worker passed the pool's memory limit"
        case .protocolViolation(let detail): text = "ProcessPoolError.protocolViolation: \(detail)"
        case .jobFailed(let type, let message): text = "ProcessPoolError.jobFailed: \(type): \(message)"
        case .unknownJob: text = "ProcessPoolError.unknownJob: the worker does not know the job"
        case .spawnFailed(let errno): text = "ProcessPoolError.spawnFailed: errno \(errno)"
        case .workerLost: text = "ProcessPoolError.workerLost: the worker sent no heartbeat within the pool's lostAfter"
        case .placementFailed(let detail): text = "ProcessPoolError.placementFailed: \(detail)"
        }
        if let jobName { text += " (job \(jobName))" }
        if let inputIndex { text += " (input \(inputIndex))" }
        return text
    }
}
