#if canImport(Glibc)
import Glibc
#endif
import CoreMetrics
import CWorkersShims
import Foundation
import Logging
import WorkersCore
import WorkersWire

/// Worker processes for parallelism and isolation: a trap, a leak or a runaway job costs one job,
/// never the program.
///
/// ```swift
/// try await WorkerProcess.runIfWorker(jobs: [Checksum.self])   // first thing in main
/// let pool = try await ProcessPool(workers: 2, jobs: [Checksum.self])
/// let sum = try await pool.run(Checksum.self, bytes)
/// let sums = try await pool.map(Checksum.self, blobs)
/// await pool.shutdown()
/// ```
///
/// Each worker slot has one thread in the driver that owns its worker process: it reads the
/// answers, exchanges heartbeats, watches time-outs and the memory limit, and replaces a worker
/// that is lost. A caller that finds a worker idle writes its batch to it directly. A worker that
/// dies, times out, falls silent or breaks the protocol costs only the batch it held (or a retry),
/// and is replaced at once: there is no broken-pool state. The pool's lifecycle, each worker's and
/// each batch's are one pure state machine, so a cancellation that arrives late is a no-op, never
/// a kill of someone else's batch.
public final class ProcessPool: Sendable {
    /// What ``shutdown(_:)`` does with queued jobs.
    public enum ShutdownMode: Hashable, Sendable {
        /// Runs every queued job, then stops the workers. The default.
        case drain
        /// Fails queued jobs with `CancellationError` and kills the workers running jobs (whose
        /// callers get `CancellationError` too), then stops the idle workers.
        case cancelPending
    }

    /// A worker as the pool sees it now.
    public struct WorkerInfo: Hashable, Sendable {
        /// The worker's id (stable across its restarts).
        public var id: Int
        /// The live process, if one is running.
        public var processID: Int32?
        /// Whether it is running a batch now.
        public var isBusy: Bool
        /// Batches this slot has answered.
        public var jobsDone: Int
        /// How many times its process was replaced after a crash, time-out or recycling.
        public var restarts: Int
    }

    let state: Supervisor
    let placement: (any PlacementDriver)?
    /// The number of workers.
    public let workers: Int

    /// Starts `workers` worker processes and waits until each has completed the handshake.
    ///
    /// - Parameters:
    ///   - workers: at least 1 (a precondition naming `workers`); default ``cpuCount``.
    ///   - jobs: the jobs the pool will submit; each worker must know them.
    ///   - executable: the worker program; default this program (`/proc/self/exe`), which must call
    ///     ``WorkerProcess/runIfWorker(jobs:)`` first thing.
    ///   - maxJobsPerWorker: replace a worker after this many batches; default never.
    ///   - retry: whether a batch whose worker died runs again on a fresh one; default ``RetryPolicy/none``.
    ///   - memoryLimit: bytes of resident memory a worker may use while it runs a batch; past it the
    ///     worker is killed and the batch fails with `.resourceLimit`. Checked every 10 ms, so a fast
    ///     allocation can overshoot by what it allocates in that time. Default: no limit. (Resident
    ///     memory rather than `RLIMIT_AS`: address-space limits also break programs that reserve much
    ///     and use little, as sanitizers and some allocators do.)
    ///   - heartbeat: how often the pool and its workers send each other heartbeats, and how long
    ///     a silent worker (stopped as a whole, or out of reach) is given before it is killed and its batch retried or
    ///     failed with `.workerLost`; default ``Heartbeat/standard`` (1 s, lost after 10 s).
    ///   - logger: where the pool logs worker starts and crashes.
    ///   - metricsFactory: reports swift-metrics when set: `<label>.busy`, `.queue_depth`, `.jobs`,
    ///     `.batch_duration` and `.worker_exits` (by `reason`). Default `nil`: no metrics.
    ///   - metricsLabel: the metrics' label prefix; default `workers.processpool`.
    /// - Throws: ``ProcessPoolError`` if a worker cannot be started.
    ///
    /// ## Cancellation
    /// Not cancellable: the start is bounded by the handshake time-out (30 s per worker).
    public convenience init(
        workers: Int = cpuCount,
        jobs: [any Job.Type],
        executable: String? = nil,
        maxJobsPerWorker: Int? = nil,
        retry: RetryPolicy = .none,
        memoryLimit: Int? = nil,
        heartbeat: Heartbeat = .standard,
        logger: Logger = Logger(label: "workers.processpool", factory: { _ in SwiftLogNoOpLogHandler() }),
        metricsFactory: (any MetricsFactory)? = nil,
        metricsLabel: String = "workers.processpool"
    ) async throws {
        try await self.init(
            jobs: jobs, placement: .local(workers: workers), executable: executable, maxJobsPerWorker: maxJobsPerWorker,
            retry: retry, memoryLimit: memoryLimit, heartbeat: heartbeat, logger: logger,
            metricsFactory: metricsFactory, metricsLabel: metricsLabel
        )
    }

    /// Starts the pool's workers where `placement` puts them and waits until each has completed
    /// the handshake: on this machine (``Placement/local``), or — with `import WorkersCluster` —
    /// on Slurm nodes, SSH hosts or agents of any launcher, each a local pool of worker processes
    /// behind one authenticated link.
    ///
    /// Beyond one machine, each input's outcome reaches the caller exactly once, but a batch whose
    /// node was lost after running it runs again: execution is at-least-once, so jobs should be
    /// idempotent. A lost node costs its batches an attempt each; a node that drains (a walltime,
    /// `scancel --signal=TERM`) costs none.
    ///
    /// - Parameters:
    ///   - jobs: the jobs the pool will submit; each worker must know them.
    ///   - placement: where the workers live.
    ///   - executable: the worker (and agent) program; default this program.
    ///   - maxJobsPerWorker: replace a worker after this many batches; default never.
    ///   - retry: default three attempts: beyond one machine a lost node is an expected event.
    ///   - memoryLimit, heartbeat, logger, metricsFactory, metricsLabel: as in
    ///     ``init(workers:jobs:executable:maxJobsPerWorker:retry:memoryLimit:heartbeat:logger:metricsFactory:metricsLabel:)``;
    ///     the heartbeat also paces the links to the agents, and a link silent for its
    ///     `lostAfter` loses its agent.
    /// - Throws: ``ProcessPoolError`` if a worker cannot be started; `.placementFailed` naming
    ///   the address, port and hosts if agents do not connect in time.
    ///
    /// ## Cancellation
    /// Not cancellable: the start is bounded by the handshake time-out and the placement's
    /// connect time-out.
    public init(
        jobs: [any Job.Type],
        placement: Placement,
        executable: String? = nil,
        maxJobsPerWorker: Int? = nil,
        retry: RetryPolicy = RetryPolicy(maxAttempts: 3),
        memoryLimit: Int? = nil,
        heartbeat: Heartbeat = .standard,
        logger: Logger = Logger(label: "workers.processpool", factory: { _ in SwiftLogNoOpLogHandler() }),
        metricsFactory: (any MetricsFactory)? = nil,
        metricsLabel: String = "workers.processpool"
    ) async throws {
        if let memoryLimit { precondition(memoryLimit > 0, "memoryLimit must be positive (got \(memoryLimit))") }
        if let maxJobsPerWorker { precondition(maxJobsPerWorker >= 1, "maxJobsPerWorker must be at least 1 (got \(maxJobsPerWorker))") }
        cworkers_ignore_sigpipe()
        let path = executable ?? (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let slots: Int
        let prefetch: Int
        let launcher: any WorkerLauncher
        let metrics = metricsFactory.map { ProcessPoolMetrics(label: metricsLabel, factory: $0) }
        switch placement.kind {
        case .local(let workers):
            precondition(workers >= 1, "workers must be at least 1 (got \(workers))")
            slots = workers
            prefetch = 0  // a pipe's round trip is microseconds: nothing to hide
            launcher = ChildProcessLauncher(executable: path)
            self.placement = nil
        case .remote(let start):
            let context = PlacementContext(executable: path, jobSignatures: jobs.map { $0.wireSignature }.sorted(), heartbeat: heartbeat, logger: logger, metrics: metrics)
            let driver = try await start(context)
            slots = driver.slots
            prefetch = driver.prefetch
            launcher = driver.launcher
            self.placement = driver
        }
        self.workers = slots
        state = Supervisor(
            workers: slots,
            configuration: Supervisor.Configuration(
                jobNames: jobs.map { $0.name }, heartbeat: heartbeat, memoryLimit: memoryLimit,
                spinNanoseconds: WorkerProcess.driverSpinNanoseconds
            ),
            launcher: launcher, retry: retry, maxJobsPerWorker: maxJobsPerWorker, prefetch: prefetch, logger: logger, metrics: metrics
        )
        do {
            try await state.start()
        } catch {
            await self.placement?.shutdown()
            throw error
        }
    }

    /// Runs `job` on `input` in a worker process.
    ///
    /// - Parameters:
    ///   - job: the job type (one of the pool's `jobs`).
    ///   - input: its input, sent to the worker encoded.
    ///   - timeout: kill the worker and fail with `.timedOut` if the job runs longer.
    /// - Returns: the job's output.
    /// - Throws: ``ProcessPoolError``: `.jobFailed` with the job's error, `.workerCrashed`,
    ///   `.timedOut`, `.protocolViolation`, `.shutDown`; or `CancellationError`.
    ///
    /// ## Cancellation
    /// A queued job is dropped at once; a running one is stopped by killing its worker, which is
    /// replaced. Either way the caller gets `CancellationError`.
    public func run<J: Job>(_ job: J.Type, _ input: J.Input, timeout: Duration? = nil) async throws -> J.Output {
        let request = try BatchRequest(jobName: J.name, inputs: WireEncoder().encode([input]), count: 1, firstIndex: nil, timeout: timeout)
        let answer = try await state.submit(request)
        guard let output = try WireDecoder().decode([J.Output].self, from: answer.outputs).first else {
            throw ProcessPoolError(.protocolViolation("no output"), jobName: J.name)
        }
        return output
    }

    /// Runs `job` on every input in the worker processes; results in input order.
    ///
    /// Inputs travel in chunks, consumed lazily, at most two chunks per worker in flight. Without
    /// `chunkSize`, chunks adapt to the measured job time as joblib's auto batching does: the first
    /// holds one input, and each answered chunk sizes the next to take about 5 ms in a worker
    /// (growing at most 16-fold a step), never more than a quarter of a worker's share when the
    /// count is known.
    ///
    /// - Parameters:
    ///   - job: the job type.
    ///   - inputs: the inputs.
    ///   - chunkSize: inputs per batch sent to a worker, at least 1; default adaptive.
    ///   - timeout: per job: a chunk of `n` inputs is stopped after `n × timeout` (pass
    ///     `chunkSize: 1` for a strict limit on each job).
    /// - Returns: the outputs, in input order.
    /// - Throws: the first failure in input order, as ``ProcessPoolError`` with `inputIndex` set.
    ///
    /// ## Cancellation
    /// Cancelling the caller drops queued chunks and kills the workers running its chunks.
    @inlinable
    public func map<J: Job, S: Sequence>(
        _ job: J.Type, _ inputs: S, chunkSize: Int? = nil, timeout: Duration? = nil
    ) async throws -> [J.Output] where S.Element == J.Input {
        // Inlinable, so the per-input loops (gather, encode, decode) are specialized for J and S
        // in the caller's module; the chunk loop itself is not generic.
        if let chunkSize { precondition(chunkSize >= 1, "chunkSize must be at least 1 (got \(chunkSize))") }
        var iterator = inputs.makeIterator()
        var chunks: [(start: Int, outputs: [J.Output])] = []
        try await forEachEncodedChunk(
            jobName: J.name, knownCount: inputs.underestimatedCount, chunkSize: chunkSize, timeout: timeout,
            next: { size in try Self.encodeChunk(J.self, of: size, from: &iterator) },
            receive: { start, bytes in
                chunks.append((start, try WireDecoder().decode([J.Output].self, from: bytes)))
            }
        )
        if chunks.count == 1 { return chunks[0].outputs }
        chunks.sort { $0.start < $1.start }
        var outputs: [J.Output] = []
        outputs.reserveCapacity(chunks.reduce(0) { $0 + $1.outputs.count })
        for chunk in chunks { outputs.append(contentsOf: chunk.outputs) }
        return outputs
    }

    /// The next `size` inputs from `iterator`, encoded as one array, with their count; `nil` when
    /// the inputs are done. Inlinable, so it is specialized where `map` is called.
    @inlinable
    static func encodeChunk<J: Job, Inputs: IteratorProtocol>(_ job: J.Type, of size: Int, from iterator: inout Inputs) throws -> (bytes: [UInt8], count: Int)? where Inputs.Element == J.Input {
        var chunk: [J.Input] = []
        chunk.reserveCapacity(Swift.min(size, 4096))
        while chunk.count < size, let input = iterator.next() { chunk.append(input) }
        return chunk.isEmpty ? nil : (try WireEncoder().encode(chunk), chunk.count)
    }

    /// ``map(_:_:chunkSize:timeout:)``'s chunks for `mapUnordered`: each answered chunk goes to
    /// `receive` with the index of its first input, in completion order.
    func forEachChunk<J: Job, S: Sequence>(
        _ job: J.Type, _ inputs: S, chunkSize: Int?, timeout: Duration?,
        _ receive: (Int, [J.Output]) async throws -> Void
    ) async throws where S.Element == J.Input {
        var iterator = inputs.makeIterator()
        try await forEachEncodedChunk(
            jobName: J.name, knownCount: inputs.underestimatedCount, chunkSize: chunkSize, timeout: timeout,
            next: { size in try Self.encodeChunk(J.self, of: size, from: &iterator) },
            receive: { start, bytes in try await receive(start, WireDecoder().decode([J.Output].self, from: bytes)) }
        )
    }

    /// The chunk loop of every `map`, not generic: sends chunks to the workers, at most two per
    /// worker in flight, asking `next(size)` for each (the next `size` inputs, encoded, or `nil`
    /// when they are done) only as one goes out, and hands each answer to `receive` with the
    /// index of its first input, in completion order. The first failure cancels the chunks still
    /// running. Both closures are built where the job's types are known.
    @usableFromInline
    func forEachEncodedChunk(
        jobName: String, knownCount: Int, chunkSize: Int?, timeout: Duration?,
        next: (Int) throws -> (bytes: [UInt8], count: Int)?,
        receive: (Int, [UInt8]) async throws -> Void
    ) async throws {
        if let chunkSize { precondition(chunkSize >= 1, "chunkSize must be at least 1 (got \(chunkSize))") }
        var sizer = ChunkSizer(chunkSize: chunkSize, knownCount: knownCount, workers: workers)
        var firstIndex = 0
        let state = self.state
        try await withThrowingTaskGroup(of: (Int, Int, BatchAnswer).self) { group in
            func submitNext() throws -> Bool {
                guard let (bytes, count) = try next(sizer.size) else { return false }
                let start = firstIndex
                let request = try BatchRequest(jobName: jobName, inputs: bytes, count: count, firstIndex: start, timeout: timeout.map { $0 * count })
                firstIndex += count
                group.addTask { (start, count, try await state.submit(request)) }
                return true
            }
            for _ in 0..<(workers * 2) where try !submitNext() { break }
            while let (start, count, answer) = try await group.next() {
                sizer.record(count: count, nanoseconds: answer.nanoseconds)
                try await receive(start, answer.outputs)
                _ = try submitNext()
            }
        }
    }

    /// The workers now.
    public var workerInfo: [WorkerInfo] { state.info }

    /// Batches waiting for a worker now.
    public var queuedBatches: Int { state.queuedCount }

    /// Stops the pool: no new jobs; queued ones run (`.drain`) or fail (`.cancelPending`); then
    /// each worker is told goodbye, given a grace period, sent SIGTERM and SIGKILL to its process
    /// group, and reaped.
    ///
    /// ## Cancellation
    /// Not cancellable: it returns when every worker has been reaped.
    public func shutdown(_ mode: ShutdownMode = .drain) async {
        placement?.shutdownBegan()
        await state.shutdown(mode)
        await placement?.shutdown()
    }

    /// The node agents of a pool placed beyond this machine; empty for a local pool.
    public var agents: [AgentInfo] { placement?.agents ?? [] }

    /// A pool dropped without ``shutdown(_:)`` drains: queued jobs run, then its workers are told
    /// goodbye and reaped by their slots' threads, which then exit.
    deinit {
        placement?.shutdownBegan()
        state.beginShutdown(.drain)
        if let placement {
            Task.detached { [state] in
                await state.shutdown(.drain)
                await placement.shutdown()
            }
        }
    }
}
