#if canImport(Glibc)
import Glibc
#endif
import DequeModule
import Foundation
import Logging
import WorkersCore
import WorkersWire

/// A batch's encoded outputs and how long the worker took over it (from sending the batch to
/// reading the answer), which sizes the next chunks.
struct BatchAnswer: Sendable {
    var outputs: [UInt8]
    var nanoseconds: UInt64
}

/// One batch of inputs for one job, from submission to its answer.
final class PendingBatch: @unchecked Sendable {  // @unchecked: mutable fields are guarded by the pool's lock.
    let id: UInt64
    let jobName: String
    let inputs: [UInt8]
    let count: Int
    let firstIndex: Int?
    let timeout: Duration?
    var continuation: CheckedContinuation<BatchAnswer, any Error>?
    var runningPID: pid_t?
    var cancelled = false
    var attempts = 0

    init(id: UInt64, jobName: String, inputs: [UInt8], count: Int, firstIndex: Int?, timeout: Duration?) {
        self.id = id
        self.jobName = jobName
        self.inputs = inputs
        self.count = count
        self.firstIndex = firstIndex
        self.timeout = timeout
    }

    /// The error for this batch, with the job name and the input index where one applies.
    func error(_ code: ProcessPoolError.Code, offset: Int = 0) -> ProcessPoolError {
        ProcessPoolError(code, jobName: jobName, inputIndex: firstIndex.map { $0 + offset })
    }
}

/// The pool's shared state and its worker-serving threads.
final class PoolState: @unchecked Sendable {  // @unchecked: mutable state is guarded by `lock`.
    enum Lifecycle { case running, draining, cancelling, stopped }

    let executable: String
    let jobNames: [String]
    let workerCount: Int
    let maxJobsPerWorker: Int?
    let retry: RetryPolicy
    let memoryLimit: Int?
    let logger: Logger
    let metrics: ProcessPoolMetrics?
    let grace = Duration.seconds(2)

    private let lock = PthreadLock()
    private let workAvailable: PthreadCondition
    private var queue: Deque<PendingBatch> = []
    private var lifecycle = Lifecycle.running
    private var nextBatchID: UInt64 = 0
    private var slots: [ProcessPool.WorkerInfo]
    private var slotsAlive = 0
    private var stoppedWaiters: [CheckedContinuation<Void, Never>] = []

    init(executable: String, jobNames: [String], workers: Int, maxJobsPerWorker: Int?, retry: RetryPolicy, memoryLimit: Int?, logger: Logger, metrics: ProcessPoolMetrics?) {
        self.memoryLimit = memoryLimit
        self.metrics = metrics
        self.executable = executable
        self.jobNames = jobNames
        self.workerCount = workers
        self.maxJobsPerWorker = maxJobsPerWorker
        self.retry = retry
        self.logger = logger
        slots = (0..<workers).map { ProcessPool.WorkerInfo(id: $0, processID: nil, isBusy: false, jobsDone: 0, restarts: 0) }
        workAvailable = PthreadCondition(lock: lock)
    }

    var info: [ProcessPool.WorkerInfo] { lock.withLock { slots } }
    var queuedCount: Int { lock.withLock { queue.count } }

    // MARK: Start

    /// Starts every worker, each from the long-lived thread that will serve it: a worker's
    /// parent-death signal fires when the *thread* that spawned it exits, so a short-lived spawning
    /// thread would take its worker down with it.
    func start() async throws {
        lock.withLock { slotsAlive = workerCount }
        let failures: [ProcessPoolError] = await withTaskGroup(of: ProcessPoolError?.self) { group in
            for id in 0..<workerCount {
                group.addTask { [self] in
                    await withCheckedContinuation { (continuation: CheckedContinuation<ProcessPoolError?, Never>) in
                        Thread.detachNewThread { [self] in
                            switch WorkerHandle.start(executable: executable, id: id, jobNames: jobNames, maxFrameSize: WireProtocol.defaultMaxFrameSize) {
                            case .success(let handle):
                                lock.withLock { slots[id].processID = handle.pid }
                                continuation.resume(returning: nil)
                                serve(slot: id, worker: handle)
                            case .failure(let error):
                                continuation.resume(returning: error)
                                slotEnded(id)
                            }
                        }
                    }
                }
            }
            var failures: [ProcessPoolError] = []
            for await failure in group { if let failure { failures.append(failure) } }
            return failures
        }
        if let failure = failures.first {
            await shutdown(.cancelPending)
            throw failure
        }
        logger.debug("process pool started", metadata: ["workers": "\(workerCount)"])
    }

    // MARK: Submit

    /// Queues a batch (`count` inputs encoded as one array) and returns its encoded outputs.
        func submit(jobName: String, inputs: [UInt8], count: Int, firstIndex: Int?, timeout: Duration?) async throws -> BatchAnswer {
        let batch: PendingBatch = lock.withLock {
            nextBatchID += 1
            return PendingBatch(id: nextBatchID, jobName: jobName, inputs: inputs, count: count, firstIndex: firstIndex, timeout: timeout)
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<BatchAnswer, any Error>) in
                let refusal: (any Error)? = lock.withLock {
                    guard lifecycle == .running else { return batch.error(.shutDown) }
                    if Task.isCancelled { return CancellationError() }
                    batch.continuation = continuation
                    queue.append(batch)
                    workAvailable.signal()
                    return nil
                }
                if let refusal { continuation.resume(throwing: refusal) } else { reportQueueDepth() }
            }
        } onCancel: {
            let (queued, pid): (CheckedContinuation<BatchAnswer, any Error>?, pid_t?) = lock.withLock {
                batch.cancelled = true
                if let index = queue.firstIndex(where: { $0 === batch }) {
                    queue.remove(at: index)
                    defer { batch.continuation = nil }
                    return (batch.continuation, nil)
                }
                return (nil, batch.runningPID)
            }
            queued?.resume(throwing: CancellationError())
            if let pid { kill(-pid, SIGKILL) }  // its slot sees the death and answers CancellationError
        }
    }

    // MARK: Serving (one thread per worker slot)

    private func serve(slot: Int, worker first: WorkerHandle) {
        defer { slotEnded(slot) }
        var worker: WorkerHandle? = first
        while let batch = nextBatch() {
            if worker == nil {
                switch WorkerHandle.start(executable: executable, id: slot, jobNames: jobNames, maxFrameSize: WireProtocol.defaultMaxFrameSize) {
                case .success(let handle):
                    worker = handle
                    lock.withLock {
                        slots[slot].processID = handle.pid
                        slots[slot].restarts += 1
                    }
                case .failure(let error):
                    logger.error("could not replace a worker", metadata: ["slot": "\(slot)", "error": "\(error)"])
                    finish(batch, .failure(batch.error(error.code)))
                    continue
                }
            }
            let current = worker!
            let proceed: Bool = lock.withLock {
                guard !batch.cancelled else { return false }
                batch.runningPID = current.pid
                slots[slot].isBusy = true
                return true
            }
            guard proceed else {
                finish(batch, .failure(CancellationError()))
                continue
            }
            reportQueueDepth()
            metrics?.batchStarted()
            let started = monotonicNanoseconds()
            let outcome = exchange(batch, with: current)
            lock.withLock { slots[slot].isBusy = false }
            switch outcome {
            case .answered(let result):
                metrics?.batchEnded(answered: (try? result.get()).map { _ in batch.count }, nanoseconds: monotonicNanoseconds() - started)
                finish(batch, result)
                current.jobsDone += 1
                lock.withLock { slots[slot].jobsDone += 1 }
                if let limit = maxJobsPerWorker, current.jobsDone >= limit {
                    _ = current.stop(grace: grace)
                    worker = nil
                    metrics?.workerExited("recycled")
                }
            case .workerLost(let code):
                let status = code == nil ? current.reap() : { current.kill() }()
                let failure = code ?? status.crashCode
                worker = nil
                let (cancelled, retried): (Bool, Bool) = lock.withLock {
                    slots[slot].processID = nil
                    let cancelled = batch.cancelled || lifecycle == .cancelling
                    batch.attempts += 1
                    guard !cancelled, retry.retries(after: batch.attempts, failure) else { return (cancelled, false) }
                    batch.runningPID = nil
                    queue.insert(batch, at: 0)  // first in line: it has waited longest
                    workAvailable.signal()
                    return (false, true)
                }
                metrics?.batchEnded(answered: nil, nanoseconds: monotonicNanoseconds() - started)
                metrics?.workerExited(cancelled ? "cancelled" : failure.metricsReason)
                logger.debug("worker lost", metadata: ["slot": "\(slot)", "pid": "\(current.pid)", "error": "\(failure)", "retried": "\(retried)"])
                if !retried {
                    finish(batch, .failure(cancelled ? CancellationError() : batch.error(failure)))
                }
            }
        }
        let cancelling = lock.withLock { lifecycle == .cancelling }
        if let worker { _ = cancelling ? worker.kill() : worker.stop(grace: grace) }
    }

    /// A slot's thread is done; the last one completes the shutdown.
    private func slotEnded(_ slot: Int) {
        let waiters: [CheckedContinuation<Void, Never>] = lock.withLock {
            slots[slot].processID = nil
            slotsAlive -= 1
            guard slotsAlive == 0 else { return [] }
            lifecycle = .stopped
            defer { stoppedWaiters.removeAll() }
            return stoppedWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    enum Exchange {
        case answered(Result<BatchAnswer, any Error>)
        /// The worker died (`nil`: reap it for its status) or must be killed (`code`).
        case workerLost(ProcessPoolError.Code?)
    }

    private func exchange(_ batch: PendingBatch, with worker: WorkerHandle) -> Exchange {
        guard let frame = try? Frame(kind: .submit, requestID: batch.id, message: Submit(jobName: batch.jobName, count: batch.count, inputs: batch.inputs)) else {
            return .answered(.failure(batch.error(.protocolViolation("input too large for a frame"))))
        }
        let started = monotonicNanoseconds()
        guard worker.channel.write(frame) else { return .workerLost(nil) }
        let deadline = batch.timeout.map { monotonicNanoseconds() + UInt64($0.saturatingNanoseconds) }
        var outcome: FrameChannel.ReadOutcome
        while true {
            // With a memory limit, wake every 10 ms to look at the worker's resident memory.
            let tick = memoryLimit.map { _ in monotonicNanoseconds() + 10_000_000 }
            outcome = worker.channel.read(deadline: [deadline, tick].compactMap { $0 }.min(), spin: WorkerProcess.spinNanoseconds)
            guard case .timedOut = outcome else { break }
            if let deadline, monotonicNanoseconds() >= deadline { break }
            if let memoryLimit, let resident = residentBytes(of: worker.pid), resident > memoryLimit {
                return .workerLost(.resourceLimit)
            }
        }
        switch outcome {
        case .endOfFile:
            return .workerLost(nil)
        case .timedOut:
            return .workerLost(.timedOut)
        case .violation(let error):
            return .workerLost(.protocolViolation(error.description))
        case .frame(let reply):
            guard reply.requestID == batch.id else { return .workerLost(.protocolViolation("answer to request \(reply.requestID), expected \(batch.id)")) }
            switch reply.kind {
            case .result:
                guard let outputs = try? reply.decode(Outputs.self), outputs.count == batch.count else {
                    return .workerLost(.protocolViolation("malformed result"))
                }
                return .answered(.success(BatchAnswer(outputs: outputs.outputs, nanoseconds: monotonicNanoseconds() - started)))
            case .failure:
                guard let failure = try? reply.decode(JobFailure.self) else { return .workerLost(.protocolViolation("malformed failure")) }
                if failure.errorType == WorkerProcess.unknownJobType { return .answered(.failure(batch.error(.unknownJob))) }
                return .answered(.failure(batch.error(.jobFailed(type: failure.errorType, message: failure.message), offset: failure.index)))
            default:
                return .workerLost(.protocolViolation("unexpected \(reply.kind) frame"))
            }
        }
    }

    /// The next batch, or `nil` when the slot should stop.
    private func nextBatch() -> PendingBatch? {
        lock.withLock {
            while true {
                if lifecycle == .cancelling { return nil }
                if let batch = queue.popFirst() { return batch }
                if lifecycle != .running { return nil }
                workAvailable.wait()
            }
        }
    }

    private func reportQueueDepth() {
        guard let metrics else { return }
        metrics.queueDepthChanged(lock.withLock { queue.count })
    }

    private func finish(_ batch: PendingBatch, _ result: Result<BatchAnswer, any Error>) {
        let continuation: CheckedContinuation<BatchAnswer, any Error>? = lock.withLock {
            batch.runningPID = nil
            defer { batch.continuation = nil }
            return batch.continuation
        }
        continuation?.resume(with: result)
    }

    // MARK: Shutdown

    func shutdown(_ mode: ProcessPool.ShutdownMode) async {
        let (failed, busy): ([PendingBatch], [pid_t]) = lock.withLock {
            switch lifecycle {
            case .running, .draining:
                lifecycle = mode == .drain ? .draining : .cancelling
            case .cancelling, .stopped:
                break
            }
            workAvailable.broadcast()
            guard lifecycle == .cancelling else { return ([], []) }
            defer { queue.removeAll() }
            return (Array(queue), slots.filter(\.isBusy).compactMap(\.processID))
        }
        for batch in failed { finish(batch, .failure(CancellationError())) }
        // Running jobs are not waited for: their workers die, their callers get CancellationError.
        for pid in busy { kill(-pid, SIGKILL) }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done: Bool = lock.withLock {
                if lifecycle == .stopped || slotsAlive == 0 { return true }
                stoppedWaiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
        logger.debug("process pool stopped")
    }
}


/// The resident set size of process `pid`, from /proc/PID/statm, or `nil` if it cannot be read.
func residentBytes(of pid: pid_t) -> Int? {
    guard let text = CPUCount.readSmallFile("/proc/\(pid)/statm") else { return nil }
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}
