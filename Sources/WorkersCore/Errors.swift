/// An error from a ``BlockingQueue`` or ``AsyncQueue``.
public struct QueueError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong; switch on it.
    public enum Code: Hashable, Sendable {
        /// A put timed out (or was non-blocking) on a full queue.
        case full
        /// A get timed out (or was non-blocking) on an empty queue.
        case empty
        /// The queue was closed: no more puts, and gets fail once it is drained.
        case closed
    }

    /// What went wrong.
    public var code: Code

    /// Creates an error with `code`.
    public init(_ code: Code) { self.code = code }

    /// The code, in words.
    public var description: String {
        switch code {
        case .full: "QueueError.full: the queue is full"
        case .empty: "QueueError.empty: the queue is empty"
        case .closed: "QueueError.closed: the queue is closed"
        }
    }
}

/// A ``Barrier`` was broken while (or before) this party waited: by a time-out, ``Barrier/abort()``,
/// ``Barrier/reset()``, a cancelled async waiter, or an action that threw. Python's `BrokenBarrierError`.
public struct BrokenBarrierError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Why the barrier broke, as far as this party can tell.
    public enum Code: Hashable, Sendable {
        /// This party's own wait timed out.
        case timedOut
        /// The barrier was broken, aborted or reset by someone else.
        case broken
    }

    /// Why the barrier broke.
    public var code: Code

    /// Creates an error with `code`.
    public init(_ code: Code) { self.code = code }

    /// The code, in words.
    public var description: String {
        switch code {
        case .timedOut: "BrokenBarrierError.timedOut: this party's wait timed out and broke the barrier"
        case .broken: "BrokenBarrierError.broken: the barrier is broken"
        }
    }
}
