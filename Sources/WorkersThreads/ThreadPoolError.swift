/// An error from a ``ThreadPool``; switch on ``code``.
public struct ThreadPoolError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong.
    public enum Code: Hashable, Sendable {
        /// The pool is shutting down or shut down: it takes no new work.
        case shutDown
        /// The pool's queue was full and its policy is ``ThreadPool/QueueFullPolicy/reject``.
        case queueFull
    }

    /// What went wrong.
    public var code: Code
    /// The name of the ``Job`` type, where the error concerns one.
    public var jobName: String?
    /// The index of the input in a `map`, where the error concerns one.
    public var inputIndex: Int?

    /// Creates an error.
    public init(_ code: Code, jobName: String? = nil, inputIndex: Int? = nil) {
        self.code = code
        self.jobName = jobName
        self.inputIndex = inputIndex
    }

    /// The code, in words, with the job name and input index when set.
    public var description: String {
        var text: String
        switch code {
        case .shutDown: text = "ThreadPoolError.shutDown: the pool is shut down and takes no new work"
        case .queueFull: text = "ThreadPoolError.queueFull: the pool's queue is full (policy .reject)"
        }
        if let jobName { text += " (job \(jobName))" }
        if let inputIndex { text += " (input \(inputIndex))" }
        return text
    }
}
