/// A one-shot gate that opens when ``countDown()`` has been called `count` times.
///
/// Use it as a start gate (count 1) or to wait until N workers have reached a point.
/// Once open it stays open.
public final class CountDownLatch: @unchecked Sendable {  // @unchecked: all state is guarded by `lock`.
    private let lock = PthreadLock()
    private let opened: PthreadCondition
    private var remaining: Int
    private var waiters = WaiterList<Void>()

    /// Creates a latch that opens after `count` calls to ``countDown()``.
    ///
    /// - Parameter count: at least 0; a negative count is a precondition failure naming `count`.
    public init(count: Int) {
        precondition(count >= 0, "count must not be negative (got \(count))")
        remaining = count
        opened = PthreadCondition(lock: lock)
    }

    /// How many ``countDown()`` calls are still needed.
    public var count: Int { lock.withLock { remaining } }

    /// Counts down by one; the call that reaches zero wakes every waiter. Extra calls do nothing.
    public func countDown() {
        let resumed: [WaiterList<Void>.Continuation] = lock.withLock {
            guard remaining > 0 else { return [] }
            remaining -= 1
            guard remaining == 0 else { return [] }
            opened.broadcast()
            return waiters.removeAll()
        }
        for continuation in resumed { continuation.resume() }
    }

    /// Blocks the calling thread until the latch opens or `timeout` passes.
    ///
    /// - Parameter timeout: `nil` waits forever; must not be negative.
    /// - Returns: `true` if the latch is open, `false` on time-out.
    @discardableResult
    public func wait(timeout: Duration? = nil) -> Bool {
        let deadline = WaitDeadline(timeout)
        return lock.withLock {
            while remaining > 0 {
                if !deadline.wait(on: opened) { return remaining == 0 }
            }
            return true
        }
    }

    /// Suspends the current task until the latch opens.
    ///
    /// ## Cancellation
    /// Throws `CancellationError` at once if the task is cancelled before or while it waits.
    public func wait() async throws {
        try await suspendUntilResumed(lock: lock) { id, continuation in
            if remaining == 0 { return .resume(.success(())) }
            waiters.append(id, continuation)
            return .suspended
        } unregister: { [self] id in
            waiters.remove(id: id)
        }
    }
}
