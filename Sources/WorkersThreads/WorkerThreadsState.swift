/// The pool's threads as a pure state machine: when to start a thread, wake one, let one spin,
/// park, or retire. No threads or locks here; ``ThreadPool`` applies it under its lock.
///
/// Counts: `threads` alive (including `starting`); `parked` waiting on the condition variable;
/// `wakeups` signals sent and not yet consumed by a parked thread; at most one `spinner` polling
/// the queue before it parks (a thread that just finished a job stays hot for a moment, so a
/// caller submitting in a loop does not pay a futex wake each time).
struct WorkerThreadsState: Equatable {
    let minThreads: Int
    let maxThreads: Int
    private(set) var threads = 0
    private(set) var starting = 0
    private(set) var parked = 0
    private(set) var wakeups = 0
    private(set) var spinning = false
    private(set) var stopping = false
    private(set) var nextThreadNumber = 0

    init(minThreads: Int, maxThreads: Int) {
        precondition(maxThreads >= 1, "maxThreads must be at least 1 (got \(maxThreads))")
        precondition(minThreads >= 0, "minThreads must not be negative (got \(minThreads))")
        precondition(minThreads <= maxThreads, "minThreads (\(minThreads)) must not exceed maxThreads (\(maxThreads))")
        self.minThreads = minThreads
        self.maxThreads = maxThreads
    }

    /// What to do after a job was appended to the queue, which now holds `queued` jobs.
    enum EnqueueAction: Equatable {
        case none
        /// Signal one parked thread.
        case wakeOne
        /// Start a thread with this number (name `<prefix>-<number>`).
        case startThread(number: Int)
    }

    /// Threads on their way to the queue: woken, starting, or spinning.
    private var coming: Int { wakeups + starting + (spinning ? 1 : 0) }

    mutating func jobEnqueued(queued: Int) -> EnqueueAction {
        if queued <= coming {
            return .none  // a woken, starting or spinning thread will take it
        }
        if parked - wakeups > 0 {
            wakeups += 1
            return .wakeOne
        }
        if threads < maxThreads {
            return startThread()
        }
        return .none  // every thread is busy: the job waits for one
    }

    private mutating func startThread() -> EnqueueAction {
        threads += 1
        starting += 1
        nextThreadNumber += 1
        return .startThread(number: nextThreadNumber)
    }

    /// `pthread_create` failed for a thread counted by ``jobEnqueued(queued:)``.
    mutating func threadStartFailed() {
        threads -= 1
        starting -= 1
    }

    /// A started thread is running its loop.
    mutating func threadStarted() {
        precondition(starting > 0)
        starting -= 1
    }

    /// What an idle thread (the queue is empty) does next.
    enum IdleAction: Equatable {
        /// Poll the queue for a while without the lock.
        case spin
        /// Park; `timeout` is `true` when it may retire after the keep-alive.
        case park(timeout: Bool)
        /// Leave the loop and end the thread.
        case exit
    }

    /// - Parameter justSpun: the thread spun since its last job and found nothing; it parks now.
    mutating func threadIdle(justSpun: Bool = false) -> IdleAction {
        if stopping { return retire() }
        if !spinning, !justSpun {
            spinning = true
            return .spin
        }
        parked += 1
        return .park(timeout: threads > minThreads)
    }

    /// The spinner stopped polling (it found a job or gave up).
    mutating func spinEnded() {
        spinning = false
    }

    /// A parked thread woke. `timedOut` is whether its keep-alive passed; `queued` is the queue
    /// length. Returns `true` if the thread should retire.
    mutating func threadWoke(timedOut: Bool, queued: Int) -> Bool {
        parked -= 1
        if wakeups > 0 {
            wakeups -= 1
            return false  // it was (or counts as) woken for a job
        }
        if stopping, queued == 0 { return retiresNow() }
        if timedOut, queued == 0, threads > minThreads { return retiresNow() }
        return false
    }

    private mutating func retiresNow() -> Bool {
        threads -= 1
        return true
    }

    private mutating func retire() -> IdleAction {
        threads -= 1
        return .exit
    }

    /// Threads are to finish the queue and exit. Returns how many parked threads to wake.
    mutating func stop() -> Int {
        stopping = true
        let toWake = parked - wakeups
        wakeups = parked
        return toWake
    }

    /// Whether every thread has exited after ``stop()``.
    var allExited: Bool { stopping && threads == 0 }
}
