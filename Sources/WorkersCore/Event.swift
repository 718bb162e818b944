/// A flag that threads and tasks can wait on, like Python's `threading.Event`.
///
/// ``set()`` wakes every waiter and lets later waits return at once until ``clear()``.
/// Blocking waits (``wait(timeout:)``) are for threads; ``wait()`` (async) suspends a task
/// without holding a thread.
public final class Event: @unchecked Sendable {  // @unchecked: all state is guarded by `lock`.
    private let lock = PthreadLock()
    private let changed: PthreadCondition
    private var flag = false
    private var waiters = WaiterList<Void>()

    /// Creates an event that is not set.
    public init() {
        changed = PthreadCondition(lock: lock)
    }

    /// Whether the flag is set.
    public var isSet: Bool { lock.withLock { flag } }

    /// Sets the flag and wakes every thread and task waiting for it.
    public func set() {
        let resumed: [WaiterList<Void>.Continuation] = lock.withLock {
            flag = true
            changed.broadcast()
            return waiters.removeAll()
        }
        for continuation in resumed { continuation.resume() }
    }

    /// Clears the flag; later waits block until ``set()`` is called again.
    public func clear() {
        lock.withLock { flag = false }
    }

    /// Blocks the calling thread until the flag is set or `timeout` passes.
    ///
    /// - Parameter timeout: how long to wait; `nil` waits forever. Must not be negative
    ///   (a precondition naming `timeout`).
    /// - Returns: `true` if the flag is set, `false` on time-out.
    @discardableResult
    public func wait(timeout: Duration? = nil) -> Bool {
        let deadline = WaitDeadline(timeout)
        return lock.withLock {
            while !flag {
                if !deadline.wait(on: changed) { return flag }
            }
            return true
        }
    }

    /// Suspends the current task until the flag is set.
    ///
    /// ## Cancellation
    /// Throws `CancellationError` at once if the task is cancelled before or while it waits.
    public func wait() async throws {
        try await suspendUntilResumed(lock: lock) { id, continuation in
            if flag { return .resume(.success(())) }
            waiters.append(id, continuation)
            return .suspended
        } unregister: { [self] id in
            waiters.remove(id: id)
        }
    }
}
