import Synchronization

private let nextWaiterID = Atomic<UInt64>(0)

/// A unique id for an async waiter, used to find it again when its task is cancelled.
package func makeWaiterID() -> UInt64 {
    nextWaiterID.wrappingAdd(1, ordering: .relaxed).newValue
}

/// What registering an async waiter decided, computed with the owner's lock held.
package enum WaitRegistration<Value: Sendable>: Sendable {
    /// The waiter was stored; something else resumes it.
    case suspended
    /// No need to wait: resume at once with this result.
    case resume(Result<Value, any Error>)
}

/// Suspends the current task until another party resumes the continuation that `register`
/// stored, or throws `CancellationError` when the task is cancelled first.
///
/// Both closures run with `lock` held. `register` stores the continuation under `id`, or returns
/// `.resume` when waiting is unnecessary; `unregister` removes the continuation for `id` if it is
/// still stored. Continuations are resumed after the lock is released.
///
/// ## Cancellation
/// A task that is cancelled before or while it waits is removed and resumed with
/// `CancellationError`; if it was resumed by the owner first, that result wins.
package func suspendUntilResumed<Value: Sendable>(
    lock: PthreadLock,
    register: (UInt64, CheckedContinuation<Value, any Error>) -> WaitRegistration<Value>,
    unregister: @escaping @Sendable (UInt64) -> CheckedContinuation<Value, any Error>?
) async throws -> Value {
    let id = makeWaiterID()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Value, any Error>) in
            let decision: WaitRegistration<Value> = lock.withLock {
                if Task.isCancelled { return .resume(.failure(CancellationError())) }
                return register(id, continuation)
            }
            if case .resume(let result) = decision {
                continuation.resume(with: result)
            }
        }
    } onCancel: {
        let continuation = lock.withLock { unregister(id) }
        continuation?.resume(throwing: CancellationError())
    }
}
