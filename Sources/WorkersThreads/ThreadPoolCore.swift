#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CWorkersShims
import CoreMetrics
import DequeModule
import Logging
import Synchronization
import WorkersCore

/// The thread-side key that marks a pool thread with its core, for ``ThreadPool/isOnPoolThread``.
private let poolThreadKey: pthread_key_t = {
    var key = pthread_key_t()
    let rc = pthread_key_create(&key, nil)
    precondition(rc == 0, "pthread_key_create failed: \(rc)")
    return key
}()

/// Everything the pool's threads share: the executor queue, the thread state machine, the job
/// admission state machine, all behind one pthread lock.
///
/// The threads hold the core, not the ``ThreadPool``, so a pool dropped without `shutdown()` is
/// deinitialised, tells its core to stop, and the threads exit once the queue is empty.
final class ThreadPoolCore: @unchecked Sendable {  // @unchecked: mutable state is guarded by `lock`; `executor` is set once before any thread starts.
    typealias AdmissionWaiter = CheckedContinuation<Admission, any Error>

    /// How an admitted job runs.
    enum Admission: Sendable { case run, runInCaller }

    let lock = PthreadLock()
    private let workAvailable: PthreadCondition
    private var jobs: Deque<UnownedJob> = []
    private var threads: WorkerThreadsState
    private var admission: ThreadPoolStateMachine<AdmissionWaiter>
    private var terminationWaiters: [CheckedContinuation<Void, Never>] = []
    /// Threads that exit because of a `shutdown()` stay joinable, and `shutdown()` joins them, so
    /// they are gone when it returns. Threads that retire or exit after the pool was dropped
    /// detach themselves.
    private var joinable: [Int: pthread_t] = [:]
    private var joinOnShutdown = false
    private var completedJobs = 0
    /// Mirrors `jobs.count` for the spinning thread, which polls without the lock.
    private let queuedHint = Atomic<Int>(0)

    /// The ``ThreadPool`` as the executor jobs run on. The task runtime retains and releases the
    /// executor a task prefers, so the identity must be the pool itself, not this core. Unowned:
    /// threads touch it only while running a job, and a job exists only while a task holds the pool.
    var executor: UnownedTaskExecutor?

    let keepAliveNanoseconds: Int64
    let namePrefix: String
    let logger: Logger
    private let metrics: ThreadPoolMetrics?

    init(configuration: ThreadPool.Configuration) {
        threads = WorkerThreadsState(minThreads: configuration.minThreads, maxThreads: configuration.maxThreads)
        admission = ThreadPoolStateMachine(
            concurrency: configuration.maxThreads,
            queueCapacity: configuration.queueCapacity,
            policy: configuration.whenQueueFull
        )
        precondition(configuration.keepAlive >= .zero, "keepAlive must not be negative (got \(configuration.keepAlive))")
        keepAliveNanoseconds = configuration.keepAlive.saturatingNanoseconds
        namePrefix = configuration.threadNamePrefix
        logger = configuration.logger
        metrics = configuration.metricsFactory.map { ThreadPoolMetrics(label: configuration.metricsLabel, factory: $0) }
        workAvailable = PthreadCondition(lock: lock)
    }

    // MARK: - Executor jobs

    func enqueue(_ job: consuming ExecutorJob) {
        let unownedJob = UnownedJob(job)
        lock.lock()
        if threads.stopping && threads.threads == 0 {
            lock.unlock()
            // The pool is gone; a task that still prefers it must not hang: run it on the global executor.
            globalConcurrentExecutor.enqueue(ExecutorJob(unownedJob))
            return
        }
        jobs.append(unownedJob)
        queuedHint.store(jobs.count, ordering: .releasing)
        let action = threads.jobEnqueued(queued: jobs.count)
        lock.unlock()
        switch action {
        case .none: break
        case .wakeOne: workAvailable.signal()
        case .startThread(let number): startThread(number: number)
        }
    }

    // MARK: - Threads

    private func startThread(number: Int) {
        let start = Unmanaged.passRetained(ThreadStart(core: self, number: number))
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        var thread = pthread_t()
        // Hold the lock across pthread_create so the new thread's exit cannot run before its
        // handle is recorded.
        lock.lock()
        let rc = pthread_create(&thread, &attributes, { argument in
            let start = Unmanaged<ThreadStart>.fromOpaque(argument!).takeRetainedValue()
            start.core.threadMain(number: start.number)
            return nil
        }, start.toOpaque())
        if rc == 0 {
            joinable[number] = thread
            lock.unlock()
        } else {
            threads.threadStartFailed()
            lock.unlock()
            start.release()
            logger.error("could not start a pool thread", metadata: ["errno": "\(rc)"])
        }
    }

    private func threadMain(number: Int) {
        _ = cworkers_set_thread_name("\(namePrefix)-\(number)")
        pthread_setspecific(poolThreadKey, Unmanaged.passUnretained(self).toOpaque())
        let executor = self.executor!
        logger.trace("pool thread started", metadata: ["thread": "\(namePrefix)-\(number)"])

        lock.lock()
        threads.threadStarted()
        metrics?.threadsChanged(threads.threads)
        var justSpun = false
        loop: while true {
            if let job = jobs.popFirst() {
                queuedHint.store(jobs.count, ordering: .releasing)
                lock.unlock()
                job.runSynchronously(on: executor)
                lock.lock()
                justSpun = false
                continue
            }
            switch threads.threadIdle(justSpun: justSpun) {
            case .exit:
                break loop
            case .spin:
                lock.unlock()
                spinForWork()
                lock.lock()
                threads.spinEnded()
                justSpun = true
                continue
            case .park(let mayRetire):
                let timedOut = mayRetire ? !workAvailable.wait(nanoseconds: keepAliveNanoseconds) : { workAvailable.wait(); return false }()
                if threads.threadWoke(timedOut: timedOut, queued: jobs.count) { break loop }
                justSpun = false
            }
        }
        if !(threads.stopping && joinOnShutdown), let handle = joinable.removeValue(forKey: number) {
            pthread_detach(handle)
        }
        let allExited = threads.allExited
        let waiters = allExited ? terminationWaiters : []
        if allExited { terminationWaiters.removeAll() }
        let remaining = threads.threads
        lock.unlock()
        metrics?.threadsChanged(remaining)
        logger.trace("pool thread exited", metadata: ["thread": "\(namePrefix)-\(number)"])
        pthread_setspecific(poolThreadKey, nil)
        for waiter in waiters { waiter.resume() }
    }

    /// Polls the queue for about 50 µs before the thread parks.
    ///
    /// After a short burst of pause instructions it yields the CPU between polls: the thread that
    /// will enqueue the next job (the caller, resumed on another executor) may be waiting for
    /// this very core, and a spinner that keeps it would delay the job it waits for. Measured
    /// with the whole benchmark pinned to one CPU: 27.9 µs a round trip with pause-only spinning,
    /// against NIOThreadPool's 7.75 µs.
    private func spinForWork() {
        let deadline = ContinuousClock.now.advanced(by: .microseconds(50))
        var spins = 0
        while queuedHint.load(ordering: .acquiring) == 0 {
            spins += 1
            if spins < 64 {
                cworkers_cpu_relax()
                continue
            }
            sched_yield()
            if spins & 7 == 0, ContinuousClock.now >= deadline { return }
        }
    }

    var isCurrentThreadInPool: Bool {
        pthread_getspecific(poolThreadKey) == Unmanaged.passUnretained(self).toOpaque()
    }

    // MARK: - Admission of `run` jobs

    /// Admits a job, suspending in the queue while every slot is taken.
    func admit() async throws -> Admission {
        let fast: ThreadPoolStateMachine<AdmissionWaiter>.SubmitAction? = lock.withLock { admission.tryAdmit() }
        switch fast {
        case .run?:
            metrics?.jobStarted()
            return .run
        case .reject(let error)?:
            throw error
        case .queued?, .runInCaller?, nil:
            break
        }
        let admitted: Admission = try await suspendUntilResumed(lock: lock) { id, continuation in
            switch admission.submit(id: id, waiter: continuation) {
            case .run: return .resume(.success(.run))
            case .runInCaller: return .resume(.success(.runInCaller))
            case .reject(let error): return .resume(.failure(error))
            case .queued: return .suspended
            }
        } unregister: { [self] id in
            admission.cancel(id: id)
        }
        if admitted == .run { metrics?.jobStarted() }
        metrics?.queueDepthChanged(lock.withLock { admission.queued })
        return admitted
    }

    /// An admitted job finished; hands its slot to the next queued job.
    func finish() {
        let (action, queued): (ThreadPoolStateMachine<AdmissionWaiter>.FinishAction, Int) = lock.withLock {
            completedJobs += 1
            return (admission.finish(), admission.queued)
        }
        metrics?.jobFinished(queued: queued)
        switch action {
        case .none: break
        case .admit(let waiter): waiter.resume(returning: .run)
        case .terminated: stopThreads()
        }
    }

    // MARK: - Shutdown

    func shutdown(_ mode: ThreadPool.ShutdownMode) async {
        let action = lock.withLock {
            joinOnShutdown = true
            return admission.shutdown(mode)
        }
        switch action {
        case .shutDown(let failQueued, let terminatedNow):
            logger.debug("thread pool shutting down", metadata: ["mode": "\(mode)", "cancelled": "\(failQueued.count)"])
            for waiter in failQueued { waiter.resume(throwing: CancellationError()) }
            if terminatedNow { stopThreads() }
        case .alreadyShuttingDown:
            break
        }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done: Bool = lock.withLock {
                if admission.lifecycle == .terminated, threads.stopping, threads.threads == 0 { return true }
                terminationWaiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
        // Every thread has left its loop; join them so they are gone, not just leaving.
        let exiting: [pthread_t] = lock.withLock {
            defer { joinable.removeAll() }
            return Array(joinable.values)
        }
        for thread in exiting { pthread_join(thread, nil) }
    }

    /// Tells every thread to finish the executor queue and exit.
    private func stopThreads() {
        let (toWake, waiters): (Int, [CheckedContinuation<Void, Never>]) = lock.withLock {
            let toWake = threads.stop()
            guard threads.allExited else { return (toWake, []) }
            defer { terminationWaiters.removeAll() }
            return (toWake, terminationWaiters)
        }
        if toWake > 0 { workAvailable.broadcast() }
        for waiter in waiters { waiter.resume() }
    }

    /// Called when the ``ThreadPool`` is dropped without shutdown: drain, then let threads exit.
    func poolDropped() {
        let action = lock.withLock { admission.shutdown(.drain) }
        if case .shutDown(_, true) = action { stopThreads() }
    }

    // MARK: - Introspection

    var statistics: ThreadPool.Statistics {
        lock.withLock {
            ThreadPool.Statistics(
                threads: threads.threads,
                idleThreads: threads.parked + (threads.spinning ? 1 : 0),
                runningJobs: admission.running,
                queuedJobs: admission.queued,
                queuedExecutorJobs: jobs.count,
                completedJobs: completedJobs,
                isAcceptingJobs: admission.lifecycle == .running
            )
        }
    }
}

/// What a new thread needs, passed through `pthread_create`'s context pointer.
private final class ThreadStart {
    let core: ThreadPoolCore
    let number: Int
    init(core: ThreadPoolCore, number: Int) {
        self.core = core
        self.number = number
    }
}
