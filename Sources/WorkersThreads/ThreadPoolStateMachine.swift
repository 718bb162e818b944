import DequeModule

/// The lifecycle and admission of a ``ThreadPool``'s jobs, as a pure state machine: no locks, no
/// threads, no continuations resumed. The pool holds it behind its lock, applies each event, and
/// carries out the returned action after releasing the lock.
///
/// A job submitted with `run` is *admitted* when fewer than `concurrency` jobs are running, else
/// *queued* (FIFO) until one finishes. Queued jobs can be cancelled; running ones cannot be taken
/// back.
///
/// `Waiter` is what a queued job is resumed through (a continuation in the pool; an `Int` in tests).
struct ThreadPoolStateMachine<Waiter> {
    /// What the pool does with new work.
    enum Lifecycle: Equatable {
        /// Admits and queues new jobs. → `.draining`, `.cancelling`.
        case running
        /// Takes no new jobs; runs the queued ones, then terminates. → `.terminated`.
        case draining
        /// Takes no new jobs; queued ones were failed; waits for the running ones. → `.terminated`.
        case cancelling
        /// Nothing runs or waits, and nothing ever will. Final.
        case terminated
    }

    /// The decision for a submitted job.
    enum SubmitAction: Equatable {
        /// Run it now.
        case run
        /// It waits in the queue; the `Waiter` was stored and is resumed by a later `.admit`.
        case queued
        /// Run it in the caller, outside the pool (policy `.runInCaller`, queue full).
        case runInCaller
        /// Fail it with this error.
        case reject(ThreadPoolError)
    }

    /// What to do after a job finished.
    enum FinishAction {
        case none
        /// Resume this queued job: it now runs.
        case admit(Waiter)
        /// The last job finished while shutting down: the pool has terminated.
        case terminated
    }

    /// What to do when shutdown is asked for.
    enum ShutdownAction {
        /// Fail these queued jobs with `CancellationError` (may be empty), and either the pool has
        /// already terminated, or it terminates when the running jobs finish (a later `.terminated`).
        case shutDown(failQueued: [Waiter], terminatedNow: Bool)
        /// Shutdown was already asked for; wait for the same termination.
        case alreadyShuttingDown(terminated: Bool)
    }

    let concurrency: Int
    let queueCapacity: Int
    let policy: ThreadPool.QueueFullPolicy
    private(set) var lifecycle = Lifecycle.running
    private(set) var running = 0
    private var queue: Deque<(id: UInt64, waiter: Waiter)> = []

    init(concurrency: Int, queueCapacity: Int, policy: ThreadPool.QueueFullPolicy) {
        precondition(concurrency >= 1, "maxThreads must be at least 1 (got \(concurrency))")
        precondition(queueCapacity >= 0, "queueCapacity must not be negative (got \(queueCapacity))")
        self.concurrency = concurrency
        self.queueCapacity = queueCapacity
        self.policy = policy
    }

    /// Jobs waiting to be admitted.
    var queued: Int { queue.count }

    /// A job is submitted; `waiter` is stored only when the action is `.queued`.
    mutating func submit(id: UInt64, waiter: Waiter) -> SubmitAction {
        guard lifecycle == .running else { return .reject(ThreadPoolError(.shutDown)) }
        if running < concurrency, queue.isEmpty {
            running += 1
            return .run
        }
        if queue.count >= queueCapacity {
            switch policy {
            case .reject: return .reject(ThreadPoolError(.queueFull))
            case .runInCaller: return .runInCaller
            case .suspend: break  // the suspended caller is the queue entry; it waits in line
            }
        }
        queue.append((id, waiter))
        return .queued
    }

    /// A job asks to run without waiting for a `Waiter` (the caller holds no continuation yet).
    /// Returns `nil` when it must be submitted with ``submit(id:waiter:)`` instead.
    mutating func tryAdmit() -> SubmitAction? {
        guard lifecycle == .running else { return .reject(ThreadPoolError(.shutDown)) }
        guard running < concurrency, queue.isEmpty else { return nil }
        running += 1
        return .run
    }

    /// The queued job `id` was cancelled: returns its waiter if it was still queued.
    mutating func cancel(id: UInt64) -> Waiter? {
        guard let index = queue.firstIndex(where: { $0.id == id }) else { return nil }
        return queue.remove(at: index).waiter
    }

    /// A running job finished (returned, threw, or was abandoned by its caller).
    mutating func finish() -> FinishAction {
        precondition(running > 0, "finish() without a running job")
        if lifecycle != .cancelling, let next = queue.popFirst() {
            return .admit(next.waiter)  // the slot passes straight to the next job
        }
        running -= 1
        if running == 0, queue.isEmpty, lifecycle == .draining || lifecycle == .cancelling {
            lifecycle = .terminated
            return .terminated
        }
        return .none
    }

    /// Shutdown is asked for: `.drain` runs the queue first, `.cancelPending` fails it.
    mutating func shutdown(_ mode: ThreadPool.ShutdownMode) -> ShutdownAction {
        switch lifecycle {
        case .running:
            var failed: [Waiter] = []
            switch mode {
            case .drain:
                lifecycle = .draining
            case .cancelPending:
                lifecycle = .cancelling
                failed = queue.map(\.waiter)
                queue.removeAll()
            }
            if running == 0, queue.isEmpty {
                lifecycle = .terminated
                return .shutDown(failQueued: failed, terminatedNow: true)
            }
            return .shutDown(failQueued: failed, terminatedNow: false)
        case .draining where mode == .cancelPending:
            // Escalate a drain to a cancellation.
            lifecycle = .cancelling
            let failed = queue.map(\.waiter)
            queue.removeAll()
            if running == 0 {
                lifecycle = .terminated
                return .shutDown(failQueued: failed, terminatedNow: true)
            }
            return .shutDown(failQueued: failed, terminatedNow: false)
        case .draining, .cancelling:
            return .alreadyShuttingDown(terminated: false)
        case .terminated:
            return .alreadyShuttingDown(terminated: true)
        }
    }
}
