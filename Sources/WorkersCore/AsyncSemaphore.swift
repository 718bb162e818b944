/// A counting semaphore for tasks: ``wait()`` suspends (never blocks a thread) until a permit is
/// free, in FIFO order, and a cancelled waiter leaves the line at once.
///
/// Use it to bound how many tasks do something at once:
///
/// ```swift
/// let downloads = AsyncSemaphore(value: 8)
/// try await downloads.withPermit { try await fetch(url) }
/// ```
public final class AsyncSemaphore: @unchecked Sendable {  // @unchecked: all state is guarded by `lock`.
    private let lock = PthreadLock()
    private var permits: Int
    private var waiters = WaiterList<Void>()

    /// Creates a semaphore with `value` free permits.
    ///
    /// - Parameter value: at least 0 (a precondition naming `value`).
    public init(value: Int) {
        precondition(value >= 0, "value must not be negative (got \(value))")
        permits = value
    }

    /// Free permits now (0 while tasks are waiting).
    public var availablePermits: Int { lock.withLock { permits } }

    /// Tasks waiting for a permit now.
    public var waitingCount: Int { lock.withLock { waiters.count } }

    /// Takes a permit, suspending in FIFO order until one is free.
    ///
    /// ## Cancellation
    /// A task cancelled before or while it waits throws `CancellationError` at once and takes no
    /// permit. A permit handed to a task that is cancelled at the same moment is kept by it: the
    /// caller must ``signal()`` as usual after a successful return.
    public func wait() async throws {
        try await suspendUntilResumed(lock: lock) { id, continuation in
            if permits > 0, waiters.isEmpty {
                permits -= 1
                return .resume(.success(()))
            }
            waiters.append(id, continuation)
            return .suspended
        } unregister: { [self] id in
            waiters.remove(id: id)
        }
    }

    /// Takes a permit if one is free now, without waiting.
    ///
    /// - Returns: `true` if a permit was taken.
    public func tryWait() -> Bool {
        lock.withLock {
            guard permits > 0, waiters.isEmpty else { return false }
            permits -= 1
            return true
        }
    }

    /// Returns a permit: the longest-waiting task gets it, or it becomes free.
    public func signal() {
        let next: WaiterList<Void>.Continuation? = lock.withLock {
            if let next = waiters.popFirst() { return next }
            permits += 1
            return nil
        }
        next?.resume()
    }

    /// Runs `body` holding a permit, and returns the permit however `body` ends.
    ///
    /// ## Cancellation
    /// Cancellation while waiting for the permit throws `CancellationError` and `body` does not
    /// run; once `body` runs, cancellation is up to `body`.
    public func withPermit<T, E: Error>(
        isolation: isolated (any Actor)? = #isolation,
        _ body: () async throws(E) -> sending T
    ) async throws -> sending T {
        try await wait()
        defer { signal() }
        return try await body()
    }
}
