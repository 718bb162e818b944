#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import Synchronization
import WorkersCore
import WorkersWire

/// The storage of a ``ProcessPool``: its ``SupervisorStateMachine`` behind one lock, a thread per
/// worker slot, and the effects — resuming callers, sending frames, posting commands to slots —
/// carried out after the lock is released.
///
/// The driver's threads are one per worker slot, however many callers wait: a slot's thread owns
/// its worker's link (it starts, reads, times, kills and reaps it), and a caller that finds an idle
/// worker writes its Submit frame itself.
final class Supervisor: @unchecked Sendable {  // @unchecked: mutable state is guarded by `lock`.
    typealias Machine = SupervisorStateMachine<CheckedContinuation<BatchAnswer, any Error>>

    struct Configuration: Sendable {
        var jobNames: [String]
        var heartbeat: Heartbeat
        var memoryLimit: Int?
        /// How long a worker told goodbye is given to exit before SIGTERM.
        var grace: Duration = .seconds(2)
        /// How long a slot's thread polls without sleeping while it expects an answer.
        var spinNanoseconds: UInt64
        var maxFrameSize = WireProtocol.defaultMaxFrameSize
        var handshakeTimeout: Duration = .seconds(30)
    }

    let configuration: Configuration
    let launcher: any WorkerLauncher
    let logger: Logger
    let metrics: ProcessPoolMetrics?
    let slots: [WorkerSlot]
    private let lock = PthreadLock()
    private var machine: Machine
    private var stoppedWaiters: [CheckedContinuation<Void, Never>] = []
    private var startWaiter: CheckedContinuation<ProcessPoolError?, Never>?
    private var startsPending: Int
    private var startFailure: ProcessPoolError?
    private let batchIDs = Atomic<UInt64>(0)

    init(workers: Int, configuration: Configuration, launcher: any WorkerLauncher, retry: RetryPolicy, maxJobsPerWorker: Int?, prefetch: Int = 0, logger: Logger, metrics: ProcessPoolMetrics?) {
        self.configuration = configuration
        self.launcher = launcher
        self.logger = logger
        self.metrics = metrics
        slots = (0..<workers).map { WorkerSlot(index: $0) }
        machine = Machine(workers: workers, retry: retry, maxBatchesPerWorker: maxJobsPerWorker, prefetch: prefetch)
        startsPending = workers
    }

    // MARK: Start

    /// Starts every slot's thread, each of which starts its worker, and waits for the handshakes.
    ///
    /// - Throws: the first start failure, after stopping the workers that did start.
    func start() async throws {
        let failure: ProcessPoolError? = await withCheckedContinuation { continuation in
            lock.withLock { startWaiter = continuation }
            for slot in slots {
                Thread.detachNewThread { [self] in
                    var loop = SlotLoop(supervisor: self, slot: slot)
                    loop.run()
                }
            }
        }
        if let failure {
            await shutdown(.cancelPending)
            throw failure
        }
        logger.debug("process pool started", metadata: ["workers": "\(slots.count)"])
    }

    /// A slot's first start ended, well (`nil`) or not.
    func firstStartEnded(_ failure: ProcessPoolError?) {
        let waiter: CheckedContinuation<ProcessPoolError?, Never>? = lock.withLock {
            if startFailure == nil { startFailure = failure }
            startsPending -= 1
            guard startsPending == 0 else { return nil }
            defer { startWaiter = nil }
            return startWaiter
        }
        waiter?.resume(returning: startFailure)
    }

    // MARK: Callers

    /// Queues a batch and returns its encoded outputs.
    func submit(_ request: BatchRequest) async throws -> BatchAnswer {
        let id = batchIDs.add(1, ordering: .relaxed).newValue
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<BatchAnswer, any Error>) in
                lock.lock()
                if Task.isCancelled {
                    lock.unlock()
                    continuation.resume(throwing: CancellationError())
                    return
                }
                let action = machine.submit(request, id: id, continuation: continuation)
                let depth = metrics == nil ? 0 : machine.queuedCount
                lock.unlock()
                metrics?.queueDepthChanged(depth)
                switch action {
                case .send(let dispatch):
                    send(dispatch, from: nil)
                case .queued(let start):
                    if let start { slots[start].post(.start) }
                case .reject(let error):
                    continuation.resume(throwing: error)
                }
            }
        } onCancel: {
            switch lock.withLock({ machine.cancel(id) }) {
            case .none: break
            case .resume(let continuation): continuation.resume(throwing: CancellationError())
            case .kill(let worker, let attempt): slots[worker].post(.kill(attempt: attempt))
            }
        }
    }

    /// Writes `dispatch`'s Submit frame to its worker, from `sender`'s thread (a slot's, or a
    /// caller's when `nil`). The slot's own thread is woken only when it must watch the batch
    /// (a time-out or a memory limit) or finish a partial write.
    func send(_ dispatch: Machine.Dispatch, from sender: Int?) {
        let now = monotonicNanoseconds()
        let request = dispatch.request
        let inFlight = WorkerSlot.InFlight(
            attempt: dispatch.attempt, request: request, startedAt: now,
            timeout: request.timeout.map { UInt64(max(0, $0.saturatingNanoseconds)) }
        )
        let slot = slots[dispatch.worker]
        let outcome: WorkerSlot.SendOutcome = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 13) { header in
            for index in 0..<5 { header[index] = request.frame[index] }
            var attempt = dispatch.attempt.bigEndian
            withUnsafeBytes(of: &attempt) { for index in 0..<8 { header[5 + index] = $0[index] } }
            return slot.send(header: UnsafeRawBufferPointer(header), frame: request.frame, generation: dispatch.generation, batch: inFlight)
        }
        switch outcome {
        case .gone:
            return  // the slot's thread reports the loss, which settles the batch
        case .queued:
            metrics?.batchStarted()
            if sender != dispatch.worker { slot.wake() }
        case .sent:
            metrics?.batchStarted()
            if sender != dispatch.worker, request.timeout != nil || configuration.memoryLimit != nil { slot.wake() }
        }
    }

    /// Resumes a caller as the state machine decided.
    func resume(_ resolution: Machine.Resolution) {
        switch resolution.outcome {
        case .answered(let answer): resolution.continuation.resume(returning: answer)
        case .failed(let error): resolution.continuation.resume(throwing: error)
        case .cancelled: resolution.continuation.resume(throwing: CancellationError())
        }
    }

    // MARK: Events from a slot's thread

    func workerStarted(_ worker: Int, generation: UInt64) -> Machine.WorkerCommand {
        lock.withLock { machine.workerStarted(worker, generation: generation) }
    }

    /// Returns what the slot's thread does next, and whether the slot is gone for good.
    func workerStartFailed(_ worker: Int, _ error: ProcessPoolError) -> (Machine.WorkerCommand, gone: Bool) {
        let (action, gone, waiters) = lock.withLock {
            let action = machine.workerStartFailed(worker, error)
            return (action, machine.workers[worker].state == .gone, action.stopped ? takeStoppedWaiters() : [])
        }
        for resolution in action.resolutions { resume(resolution) }
        for waiter in waiters { waiter.resume() }
        return (action.command, gone)
    }

    func answer(_ worker: Int, attempt: UInt64, _ result: Result<BatchAnswer, ProcessPoolError>) -> Machine.AnswerAction {
        lock.withLock { machine.answer(worker: worker, attempt: attempt, result) }
    }

    /// Returns what the slot's thread does next (`.none`: the slot is gone). `running`: the
    /// attempt the lost process was running, if one may be charged for the loss.
    func workerLost(_ worker: Int, _ code: ProcessPoolError.Code, running: UInt64?) -> Machine.WorkerCommand {
        let (action, waiters) = lock.withLock {
            let action = machine.workerLost(worker, code, running: running)
            return (action, action.stopped ? takeStoppedWaiters() : [])
        }
        for dispatch in action.dispatches { send(dispatch, from: worker) }
        for resolution in action.resolutions { resume(resolution) }
        for waiter in waiters { waiter.resume() }
        return action.command
    }

    func workerStopped(_ worker: Int) {
        let waiters = lock.withLock { machine.workerStopped(worker) ? takeStoppedWaiters() : [] }
        for waiter in waiters { waiter.resume() }
    }

    func confirmKill(_ worker: Int, attempt: UInt64) -> Bool {
        lock.withLock { machine.confirmKill(worker: worker, attempt: attempt) }
    }

    func state(of worker: Int) -> Machine.WorkerState {
        lock.withLock { machine.workers[worker].state }
    }

    private func takeStoppedWaiters() -> [CheckedContinuation<Void, Never>] {
        defer { stoppedWaiters.removeAll() }
        return stoppedWaiters
    }

    // MARK: Reports

    var info: [ProcessPool.WorkerInfo] {
        let workers = lock.withLock { machine.workers }
        return workers.indices.map { index in
            let worker = workers[index]
            var busy = false
            if case .busy = worker.state { busy = true }
            return ProcessPool.WorkerInfo(id: index, processID: slots[index].processID, isBusy: busy, jobsDone: worker.answered, restarts: worker.restarts)
        }
    }

    var queuedCount: Int { lock.withLock { machine.queuedCount } }

    // MARK: Shutdown

    func shutdown(_ mode: ProcessPool.ShutdownMode) async {
        let stopped = beginShutdown(mode)
        if !stopped {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let stopped: Bool = lock.withLock {
                    if machine.lifecycle == .stopped { return true }
                    stoppedWaiters.append(continuation)
                    return false
                }
                if stopped { continuation.resume() }
            }
        }
        logger.debug("process pool stopped")
    }

    /// Starts a shutdown and returns whether the pool has already stopped; the slots' threads
    /// finish it. The pool's `deinit` calls this with `.drain`: a pool dropped without
    /// `shutdown()` still runs what was queued and then stops its workers.
    @discardableResult
    func beginShutdown(_ mode: ProcessPool.ShutdownMode) -> Bool {
        let (action, waiters) = lock.withLock {
            let action = machine.shutdown(mode)
            return (action, action.stopped ? takeStoppedWaiters() : [])
        }
        for continuation in action.cancelled { continuation.resume(throwing: CancellationError()) }
        for (worker, attempt) in action.kills { slots[worker].post(.kill(attempt: attempt)) }
        for worker in action.stops { slots[worker].post(.stop) }
        for worker in action.starts { slots[worker].post(.start) }
        for slot in slots { slot.wake() }  // a slot that went from down to gone ends its thread
        for waiter in waiters { waiter.resume() }
        return action.stopped
    }
}
