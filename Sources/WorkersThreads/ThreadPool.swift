import CoreMetrics
import Logging
import WorkersCore

/// Dedicated OS threads for blocking work — file system calls, synchronous clients, C libraries,
/// sleeps — joined to async/await as a `TaskExecutor`.
///
/// Swift's default executor on Linux is as wide as the CPU count: a blocking call inside a task
/// holds one of those few threads, and unrelated tasks starve behind it. Run blocking work here
/// instead:
///
/// ```swift
/// let io = ThreadPool(threads: 64)
/// let bytes = try await io.run { try readWholeFile(path) }
/// let pages = try await io.map(urls, maxInFlight: 128) { try fetchSync($0) }
/// await io.shutdown()
/// ```
///
/// The body of ``run(_:)`` runs *inside the caller's task* on a pool thread, so task-locals
/// (`Logger.current`, `ServiceContext`) are visible in it and so is cancellation
/// (`Task.isCancelled`). Whole async regions can run on the pool with
/// `withTaskExecutorPreference(pool) { … }`, `Task(executorPreference: pool)` or
/// `group.addTask(executorPreference: pool)`.
///
/// ## Sizing
/// Threads start on demand up to `maxThreads` and those above `minThreads` retire after
/// `keepAlive` idle. The default maximum, ``defaultMaxThreads``, is sized for blocking I/O, not
/// for the CPU count: a thread that waits costs only its stack.
///
/// ## Admission and queueing
/// At most `maxThreads` jobs from ``run(_:)`` and the `map` family run at once; the rest wait in a
/// FIFO queue of `queueCapacity`. When it is full, ``QueueFullPolicy`` decides: suspend the caller
/// (default), reject with ``ThreadPoolError/Code/queueFull``, or run the job in the caller.
///
/// ## Traps
/// A job that traps (a force-unwrap of `nil`, an index out of range, `fatalError`) kills the
/// whole process: threads share it. Run such work in a process pool to isolate it.
///
/// ## Shutdown
/// Call ``shutdown(_:)`` when done. A pool dropped without it drains its queue and its threads
/// then exit; it leaks nothing. Tasks that still prefer a shut-down pool run on the global
/// executor rather than hang.
public final class ThreadPool: TaskExecutor, Sendable {
    /// What happens to a job submitted while the queue is full.
    public enum QueueFullPolicy: Hashable, Sendable {
        /// The caller waits in line (it is suspended, not blocked). The default.
        case suspend
        /// The job fails at once with ``ThreadPoolError/Code/queueFull``.
        case reject
        /// The job runs at once in the caller's own thread (as Java's `CallerRunsPolicy`), which
        /// slows the producer down instead of growing the queue.
        case runInCaller
    }

    /// What ``shutdown(_:)`` does with queued jobs.
    public enum ShutdownMode: Hashable, Sendable {
        /// Runs every job already queued, then stops. The default.
        case drain
        /// Fails queued jobs with `CancellationError` and waits only for running ones.
        case cancelPending
    }

    /// How a pool is built.
    public struct Configuration: Sendable {
        /// Threads kept alive when idle. Default 0.
        public var minThreads: Int = 0
        /// Most threads, and most jobs running at once. Default ``ThreadPool/defaultMaxThreads``.
        public var maxThreads: Int = ThreadPool.defaultMaxThreads
        /// How long a thread above `minThreads` stays idle before it exits. Default 30 s.
        public var keepAlive: Duration = .seconds(30)
        /// Most jobs waiting for a slot before ``whenQueueFull`` applies. Default unbounded.
        public var queueCapacity: Int = .max
        /// What a full queue does. Default ``QueueFullPolicy/suspend``.
        public var whenQueueFull: QueueFullPolicy = .suspend
        /// Threads are named `<prefix>-<n>` (the kernel keeps 15 bytes). Default `workers`.
        public var threadNamePrefix: String = "workers"
        /// Where the pool logs thread starts, exits and shutdown. Default: nowhere.
        public var logger: Logger = Logger(label: "workers.threadpool", factory: { _ in SwiftLogNoOpLogHandler() })
        /// If set, the pool reports gauges `<label>.threads`, `.busy`, `.queue_depth` and a counter
        /// `.completed`. Default `nil`: no metrics.
        public var metricsFactory: (any MetricsFactory)? = nil
        /// The prefix of the metric labels. Default `workers.threadpool`.
        public var metricsLabel: String = "workers.threadpool"

        /// The defaults.
        public init() {}
    }

    /// The default most threads: `max(64, 16 × cpuCount)`. Blocking I/O needs threads in
    /// proportion to the waits in flight, not to cores; Python's `ThreadPoolExecutor` caps at 32,
    /// Java's cached pool does not cap at all.
    public static var defaultMaxThreads: Int { max(64, 16 * cpuCount) }

    /// A snapshot of the pool's counters.
    public struct Statistics: Hashable, Sendable {
        /// Threads alive.
        public var threads: Int
        /// Threads waiting for work.
        public var idleThreads: Int
        /// Jobs from `run`/`map` running now.
        public var runningJobs: Int
        /// Jobs from `run`/`map` waiting for a slot.
        public var queuedJobs: Int
        /// Executor jobs (task steps) waiting for a thread.
        public var queuedExecutorJobs: Int
        /// Jobs from `run`/`map` finished since the pool was made.
        public var completedJobs: Int
        /// Whether the pool takes new jobs: `false` once ``ThreadPool/shutdown(_:)`` has begun.
        public var isAcceptingJobs: Bool
    }

    let core: ThreadPoolCore

    /// The most jobs that run at once.
    public let maxThreads: Int

    /// Creates a pool from a configuration. Starts no thread until work arrives.
    ///
    /// Invalid sizes are precondition failures whose message names the parameter: `maxThreads`
    /// below 1, `minThreads` below 0 or above `maxThreads`, a negative `queueCapacity` or `keepAlive`.
    public init(configuration: Configuration) {
        core = ThreadPoolCore(configuration: configuration)
        maxThreads = configuration.maxThreads
        core.executor = UnownedTaskExecutor(ordinary: self)
    }

    /// Creates a pool of exactly `threads` threads (started on demand, never retired).
    ///
    /// - Parameters:
    ///   - threads: at least 1 (a precondition naming `threads`).
    ///   - queueCapacity: most jobs waiting for a thread; default unbounded.
    ///   - whenQueueFull: the policy for a full queue; default ``QueueFullPolicy/suspend``.
    ///   - logger: where the pool logs; default nowhere.
    ///   - metricsFactory: reports metrics when set.
    public convenience init(
        threads: Int,
        queueCapacity: Int = .max,
        whenQueueFull: QueueFullPolicy = .suspend,
        logger: Logger? = nil,
        metricsFactory: (any MetricsFactory)? = nil
    ) {
        precondition(threads >= 1, "threads must be at least 1 (got \(threads))")
        var configuration = Configuration()
        configuration.minThreads = threads
        configuration.maxThreads = threads
        configuration.queueCapacity = queueCapacity
        configuration.whenQueueFull = whenQueueFull
        if let logger { configuration.logger = logger }
        configuration.metricsFactory = metricsFactory
        self.init(configuration: configuration)
    }

    /// Creates an elastic pool: threads start on demand up to `maxThreads`, and those above
    /// `minThreads` exit after `keepAlive` idle.
    ///
    /// - Parameters:
    ///   - minThreads: threads kept when idle; default 0.
    ///   - maxThreads: most threads; default ``defaultMaxThreads``.
    ///   - keepAlive: idle time before a thread above the minimum exits; default 30 s.
    ///   - queueCapacity: most jobs waiting for a thread; default unbounded.
    ///   - whenQueueFull: the policy for a full queue.
    ///   - logger: where the pool logs; default nowhere.
    ///   - metricsFactory: reports metrics when set.
    public convenience init(
        minThreads: Int = 0,
        maxThreads: Int = ThreadPool.defaultMaxThreads,
        keepAlive: Duration = .seconds(30),
        queueCapacity: Int = .max,
        whenQueueFull: QueueFullPolicy = .suspend,
        logger: Logger? = nil,
        metricsFactory: (any MetricsFactory)? = nil
    ) {
        var configuration = Configuration()
        configuration.minThreads = minThreads
        configuration.maxThreads = maxThreads
        configuration.keepAlive = keepAlive
        configuration.queueCapacity = queueCapacity
        configuration.whenQueueFull = whenQueueFull
        if let logger { configuration.logger = logger }
        configuration.metricsFactory = metricsFactory
        self.init(configuration: configuration)
    }

    deinit {
        core.poolDropped()
    }

    // MARK: - TaskExecutor

    /// Runs an executor job on a pool thread. Part of `TaskExecutor`; tasks reach it through
    /// `withTaskExecutorPreference(pool)` and `executorPreference: pool`.
    public func enqueue(_ job: consuming ExecutorJob) {
        core.enqueue(job)
    }

    /// Whether the calling thread is one of this pool's threads.
    public var isOnPoolThread: Bool { core.isCurrentThreadInPool }

    /// A snapshot of the pool's counters.
    public var statistics: Statistics { core.statistics }

    // MARK: - Running one job

    /// Runs a blocking `body` on a pool thread and returns its value.
    ///
    /// `body` runs inside the calling task, so task-locals and `Task.isCancelled` work in it.
    ///
    /// - Parameter body: the blocking work.
    /// - Returns: what `body` returns.
    /// - Throws: what `body` throws (the pool carries on); ``ThreadPoolError`` with `.shutDown`
    ///   after ``shutdown(_:)``, or `.queueFull` under ``QueueFullPolicy/reject``.
    ///
    /// ## Cancellation
    /// A caller that is cancelled before its job starts — including while it waits in the queue —
    /// gets `CancellationError` at once and `body` never runs. Once `body` runs it is not
    /// interrupted (no thread can be), but `Task.isCancelled` turns true inside it, so a loop can
    /// stop early.
    public func run<T, E: Error>(_ body: () throws(E) -> sending T) async throws -> sending T {
        if Task.isCancelled { throw CancellationError() }
        switch try await core.admit() {
        case .runInCaller:
            return try body()
        case .run:
            defer { core.finish() }
            if Task.isCancelled { throw CancellationError() }  // cancelled while being admitted
            let transfer = try await withTaskExecutorPreference(self) {
                Transfer(value: try await Self.runOnCurrentExecutor(body))
            }
            return transfer.take()
        }
    }

    /// Carries `body`'s `sending` result out of `withTaskExecutorPreference`, which returns a plain
    /// `T`. @unchecked: the value is in a disconnected region (it was returned as `sending`) and is
    /// taken exactly once.
    private struct Transfer<Value>: @unchecked Sendable {
        var value: Value
        consuming func take() -> sending Value { value }
    }

    /// Runs `body` where the task's executor preference puts it (the pool), not on an actor.
    @concurrent
    private static func runOnCurrentExecutor<T, E: Error>(_ body: () throws(E) -> sending T) async throws(E) -> sending T {
        try body()
    }

    /// Runs a ``Job`` on a pool thread.
    ///
    /// The same call runs the job on a process pool, so code can stay generic over where it runs.
    ///
    /// - Parameters:
    ///   - job: the job type; an instance is made with `init()`.
    ///   - input: the job's input.
    /// - Returns: the job's output.
    /// - Throws: what the job throws; ``ThreadPoolError`` when the pool cannot take it.
    ///
    /// ## Cancellation
    /// As ``run(_:)``: cancelled before it starts, the job never runs; once running, the job sees
    /// `Task.isCancelled`.
    public func run<J: Job>(_ job: J.Type, _ input: J.Input) async throws -> J.Output {
        if Task.isCancelled { throw CancellationError() }
        switch try await core.admit() {
        case .runInCaller:
            return try await J().run(input)
        case .run:
            defer { core.finish() }
            if Task.isCancelled { throw CancellationError() }
            return try await withTaskExecutorPreference(self) {
                try await J().run(input)
            }
        }
    }

    /// Shuts the pool down and waits until its threads have exited.
    ///
    /// - Parameter mode: ``ShutdownMode/drain`` (default) runs every job already queued;
    ///   ``ShutdownMode/cancelPending`` fails queued jobs with `CancellationError`. Either way,
    ///   running jobs finish, and new submissions fail with ``ThreadPoolError/Code/shutDown``.
    ///   Calling it again waits for the same end; `.cancelPending` after `.drain` escalates.
    ///
    /// ## Cancellation
    /// Not cancellable: the pool's threads are joined whatever the caller's state, so nothing
    /// outlives the call.
    public func shutdown(_ mode: ShutdownMode = .drain) async {
        await core.shutdown(mode)
    }
}
