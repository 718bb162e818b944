import DequeModule
import WorkersWire

/// What a batch carries: the job, its encoded inputs, and where its error points.
struct BatchRequest: Sendable {
    var jobName: String
    /// The whole Submit frame (its `count` inputs encoded together as one array), with request
    /// id 0: each attempt writes its own id into the header as it sends.
    var frame: [UInt8]
    var count: Int
    /// The index of the first input in its `map`, or `nil` for a single `run`.
    var firstIndex: Int?
    /// How long the batch may run once sent.
    var timeout: Duration?

    /// A batch of `count` inputs (encoded together as one array) for job `jobName`.
    ///
    /// - Throws: ``ProcessPoolError`` with `.protocolViolation` when the frame would be over the
    ///   protocol's limit.
    init(jobName: String, inputs: [UInt8], count: Int, firstIndex: Int?, timeout: Duration?) throws(ProcessPoolError) {
        self.jobName = jobName
        self.count = count
        self.firstIndex = firstIndex
        self.timeout = timeout
        do {
            frame = try Frame(kind: .submit, requestID: 0, message: Submit(jobName: jobName, count: count, inputs: inputs)).encoded()
        } catch {
            throw ProcessPoolError(.protocolViolation("input too large for a frame: \(error)"), jobName: jobName, inputIndex: firstIndex)
        }
    }

    /// A batch whose Submit frame is already encoded.
    init(jobName: String, frame: [UInt8], count: Int, firstIndex: Int?, timeout: Duration?) {
        self.jobName = jobName
        self.frame = frame
        self.count = count
        self.firstIndex = firstIndex
        self.timeout = timeout
    }

    /// The error for this batch, with the job name and the input index where one applies.
    func error(_ code: ProcessPoolError.Code, offset: Int = 0) -> ProcessPoolError {
        ProcessPoolError(code, jobName: jobName, inputIndex: firstIndex.map { $0 + offset })
    }
}

/// A batch's encoded outputs and how long the worker took over it (from sending the batch to
/// reading the answer), which sizes the next chunks.
struct BatchAnswer: Hashable, Sendable {
    var outputs: [UInt8]
    var nanoseconds: UInt64
}

/// The lifecycle of a ``ProcessPool`` — the pool, each worker and each batch — as a pure state
/// machine: no locks, no threads, no I/O, no continuations resumed. The supervisor holds it behind
/// its lock, applies each event and carries out the returned actions after releasing the lock.
///
/// Three lifecycles, each one `enum`:
/// - the pool's ``Lifecycle``: running → draining | cancelling → stopped;
/// - each worker's ``WorkerState``: starting → idle ⇄ busy(held) → … → stopping → gone, with
///   `down` for a slot whose process could not be started;
/// - each batch's ``BatchState``, a ledger: queued → dispatched(worker, attempt) → answered |
///   failed | cancelled. The terminal states are not stored: the event that reaches one returns
///   the batch's continuation with its ``Outcome``, exactly once, and forgets the batch.
///
/// Every dispatch gets a fresh ``Attempt`` number (it is the frame's request id on the wire). A
/// kill is always asked for *by attempt*, and only the worker's own thread carries it out, after
/// ``confirmKill(worker:attempt:)`` says the worker still holds that attempt: a cancellation
/// that arrives after the answer, or after the worker moved on to someone else's batch, is then a
/// no-op. An answer for any attempt the worker does not hold is dropped.
///
/// **Prefetch.** A worker holds up to `1 + prefetch` batches: the one it runs and the ones sent
/// behind it, which it runs next without waiting a round trip for them (remote workers, whose
/// round trip is a network's). A local pool has `prefetch` 0. The frames of a worker's batches
/// may reach it in another order than they were dispatched (a caller's thread and the slot's
/// thread both send), so the machine does not say which one runs: the slot's thread knows, and
/// names it in ``workerLost(_:_:running:)``. Only that one is charged an attempt; the others held
/// did not run and go back to the queue as they were.
///
/// `Continuation` is what a caller is resumed through (a `CheckedContinuation` in the pool; a
/// plain value in tests).
struct SupervisorStateMachine<Continuation> {
    typealias BatchID = UInt64
    typealias Attempt = UInt64

    /// The pool's lifecycle.
    enum Lifecycle: Hashable, Sendable {
        /// Takes batches and keeps every worker alive. → `.draining`, `.cancelling`.
        case running
        /// Takes no new batches; runs the queued ones, then stops each worker as it runs out of
        /// work. → `.cancelling` (an escalation), `.stopped`.
        case draining
        /// Takes no new batches; queued ones were failed, running ones are being killed. → `.stopped`.
        case cancelling
        /// Every worker is gone. Final.
        case stopped
    }

    /// One worker slot's lifecycle. The slot's thread owns its process; only events from that
    /// thread (started, answer, lost, stopped) and a dispatch (idle → busy) change it.
    enum WorkerState: Hashable, Sendable {
        /// A process is being started and shaken hands with. → `.idle`, `.down`, `.gone`.
        case starting
        /// Ready for a batch. → `.busy`, `.stopping`, `.starting` (lost while idle).
        case idle
        /// Holding `held` (never empty, in dispatch order): one runs, the rest wait in the worker.
        /// → `.idle`, `.starting` (recycled or replaced), `.stopping`, `.gone`.
        case busy([Held])
        /// No process: the last start failed. Started again when work needs it. → `.starting`, `.gone`.
        case down
        /// Told goodbye; being reaped. → `.gone`.
        case stopping
        /// Stopped for good. Final.
        case gone
    }

    /// One batch a worker holds, under the attempt it was sent as.
    struct Held: Hashable, Sendable {
        var batch: BatchID
        var attempt: Attempt
    }

    /// Where a batch is in the ledger while it is open.
    enum BatchState: Hashable, Sendable {
        /// Waiting for a worker.
        case queued
        /// Sent to `worker` as `attempt`.
        case dispatched(worker: Int, attempt: Attempt)
    }

    /// How a batch ended: the ledger's terminal states.
    enum Outcome: Hashable, Sendable {
        case answered(BatchAnswer)
        case failed(ProcessPoolError)
        case cancelled
    }

    /// A batch to send to a worker, and the worker process (`generation`) it is meant for.
    struct Dispatch: Sendable {
        var worker: Int
        var generation: UInt64
        var attempt: Attempt
        var batch: BatchID
        var request: BatchRequest
    }

    /// A caller to resume and how.
    struct Resolution {
        var continuation: Continuation
        var outcome: Outcome
    }

    /// What a worker's own thread does next with its worker.
    enum WorkerCommand: Sendable {
        /// Nothing: it waits (idle, or busy with batches sent by their callers).
        case none
        /// Send these batches (to this worker), in order; never empty.
        case send([Dispatch])
        /// Kill the process, whose batches were all cancelled (then report ``workerLost(_:_:running:)``).
        case terminate
        /// Say goodbye and reap it (then report ``workerStopped(_:)``).
        case stop
        /// Stop it gracefully and start a fresh process (`maxJobsPerWorker` reached).
        case recycle
        /// Start a process (then report ``workerStarted(_:generation:)`` or ``workerStartFailed(_:_:)``).
        case start
    }

    /// What to do after a worker's process was lost or could not be started.
    struct LossAction {
        /// The batches it held that ended (or, for a failed start, the queued batch it fails).
        var resolutions: [Resolution] = []
        /// For the lost worker's thread.
        var command: WorkerCommand
        /// Re-queued batches that went straight to other workers with room.
        var dispatches: [Dispatch] = []
        /// The pool has just stopped.
        var stopped: Bool
    }

    /// What to do after shutdown was asked for.
    struct ShutdownAction {
        /// Queued batches, to fail with `CancellationError` (`.cancelPending`).
        var cancelled: [Continuation] = []
        /// Workers whose running attempt must be killed (`.cancelPending`).
        var kills: [(worker: Int, attempt: Attempt)] = []
        /// Workers to tell goodbye.
        var stops: [Int] = []
        /// Workers to start, to drain a queue no live worker would take.
        var starts: [Int] = []
        /// The pool is stopped (now, or already).
        var stopped: Bool
    }

    /// The decision for a submitted batch.
    enum SubmitAction {
        /// A worker with room takes it: the caller sends it.
        case send(Dispatch)
        /// It waits in the queue; when `start` is set, that worker must be started to take it.
        case queued(start: Int?)
        /// Refused; the continuation was not stored.
        case reject(ProcessPoolError)
    }

    /// The decision for a cancelled batch.
    enum CancelAction {
        /// It had ended (or never was): nothing to do.
        case none
        /// It was queued: resume it with `CancellationError`.
        case resume(Continuation)
        /// A worker holds it: ask `worker`'s thread to kill `attempt`.
        case kill(worker: Int, attempt: Attempt)
    }

    /// What to do after an answer arrived.
    enum AnswerAction {
        /// Not for an attempt the worker holds (superseded, or never sent): ignored.
        case dropped
        /// The batch ended; then the worker does `next`.
        case resolved(Resolution, next: WorkerCommand)
    }

    struct Worker: Hashable, Sendable {
        var state: WorkerState = .starting
        /// The process now serving the slot, counted from 1 (0: none yet).
        var generation: UInt64 = 0
        /// Batches answered by the current process (for recycling).
        var answeredByProcess = 0
        /// Batches answered by the slot, all processes together.
        var answered = 0
        /// Processes started after the first.
        var restarts = 0
    }

    private struct Batch {
        var request: BatchRequest
        var continuation: Continuation
        var state: BatchState = .queued
        var attempts = 0
        var cancelRequested = false
    }

    let retry: RetryPolicy
    let maxBatchesPerWorker: Int?
    /// Batches a worker holds beyond the one it runs.
    let prefetch: Int
    private(set) var lifecycle = Lifecycle.running
    private(set) var workers: [Worker]
    private var batches: [BatchID: Batch] = [:]
    private var queue: Deque<BatchID> = []
    private var nextAttempt: Attempt = 0

    /// A pool of `workers` slots, each `.starting` (its thread starts its first process), each
    /// holding up to `1 + prefetch` batches.
    init(workers: Int, retry: RetryPolicy = .none, maxBatchesPerWorker: Int? = nil, prefetch: Int = 0) {
        precondition(workers >= 1, "workers must be at least 1 (got \(workers))")
        precondition(prefetch >= 0, "prefetch must not be negative (got \(prefetch))")
        self.retry = retry
        self.maxBatchesPerWorker = maxBatchesPerWorker
        self.prefetch = prefetch
        self.workers = Array(repeating: Worker(), count: workers)
    }

    /// Batches waiting for a worker.
    var queuedCount: Int { queue.count }

    /// Where batch `id` is, or `nil` when it has ended or never was.
    func state(of id: BatchID) -> BatchState? { batches[id]?.state }

    // MARK: Callers

    /// A caller submits batch `id` (unique, chosen by the caller before it can be cancelled);
    /// `continuation` is stored unless the action is `.reject`.
    mutating func submit(_ request: BatchRequest, id: BatchID, continuation: Continuation) -> SubmitAction {
        guard lifecycle == .running else { return .reject(request.error(.shutDown)) }
        batches[id] = Batch(request: request, continuation: continuation)
        if queue.isEmpty, let worker = leastLoadedWorkerWithRoom() {
            return .send(dispatch(id, to: worker))
        }
        queue.append(id)
        return .queued(start: startDownWorker())
    }

    /// The caller of batch `id` was cancelled.
    mutating func cancel(_ id: BatchID) -> CancelAction {
        guard var batch = batches[id] else { return .none }
        switch batch.state {
        case .queued:
            queue.removeAll { $0 == id }
            batches[id] = nil
            return .resume(batch.continuation)
        case .dispatched(let worker, let attempt):
            guard !batch.cancelRequested else { return .none }
            batch.cancelRequested = true
            batches[id] = batch
            return .kill(worker: worker, attempt: attempt)
        }
    }

    // MARK: A worker's thread

    /// Whether `worker` still holds `attempt`: the worker's thread asks before it kills (for a
    /// cancellation, a time-out or the memory limit), so it never kills for a batch that ended.
    func confirmKill(worker: Int, attempt: Attempt) -> Bool {
        if case .busy(let held) = workers[worker].state { return held.contains { $0.attempt == attempt } }
        return false
    }

    /// `worker`'s new process (number `generation`) completed its handshake.
    mutating func workerStarted(_ worker: Int, generation: UInt64) -> WorkerCommand {
        precondition(workers[worker].state == .starting, "workerStarted in \(workers[worker].state)")
        if workers[worker].generation != 0 { workers[worker].restarts += 1 }
        workers[worker].generation = generation
        workers[worker].answeredByProcess = 0
        workers[worker].state = .idle
        return nextCommand(for: worker)
    }

    /// `worker`'s process could not be started (or failed its handshake).
    ///
    /// While the pool runs, the slot goes `.down`. When no other worker is alive to run the
    /// queue, a queued batch fails with `error` (so a program that cannot start never leaves
    /// callers waiting) and the slot tries again if more are queued. When others are alive (a
    /// remote slot whose agent drained, with other agents working), nothing fails: they run the
    /// queue, and the slot is started again when work next arrives.
    mutating func workerStartFailed(_ worker: Int, _ error: ProcessPoolError) -> LossAction {
        precondition(workers[worker].state == .starting, "workerStartFailed in \(workers[worker].state)")
        let othersAlive = workers.indices.contains { index in
            guard index != worker else { return false }
            switch workers[index].state {
            case .idle, .busy: return true
            case .starting, .down, .stopping, .gone: return false
            }
        }
        var resolutions: [Resolution] = []
        if lifecycle == .running || lifecycle == .draining, !othersAlive, let id = queue.popFirst(), let batch = batches.removeValue(forKey: id) {
            resolutions.append(Resolution(continuation: batch.continuation, outcome: .failed(batch.request.error(error.code))))
        }
        let command: WorkerCommand
        if lifecycle == .cancelling || lifecycle == .stopped || (lifecycle == .draining && queue.isEmpty) {
            workers[worker].state = .gone
            command = .none
        } else if queue.isEmpty || othersAlive {
            workers[worker].state = .down
            command = .none
        } else {
            command = .start  // still .starting
        }
        return LossAction(resolutions: resolutions, command: command, stopped: checkStopped())
    }

    /// `worker` answered `attempt`: outputs, or the job's thrown error as `.failure`.
    mutating func answer(worker: Int, attempt: Attempt, _ result: Result<BatchAnswer, ProcessPoolError>) -> AnswerAction {
        guard case .busy(var held) = workers[worker].state, let position = held.firstIndex(where: { $0.attempt == attempt }),
              let batch = batches.removeValue(forKey: held[position].batch) else {
            return .dropped
        }
        held.remove(at: position)
        workers[worker].answered += 1
        workers[worker].answeredByProcess += 1
        workers[worker].state = held.isEmpty ? .idle : .busy(held)
        let outcome: Outcome
        if batch.cancelRequested {
            outcome = .cancelled
        } else {
            switch result {
            case .success(let answer): outcome = .answered(answer)
            case .failure(let error): outcome = .failed(error)
            }
        }
        let resolution = Resolution(continuation: batch.continuation, outcome: outcome)
        if !held.isEmpty {
            // Still busy: in a cancellation the rest are killed; otherwise it takes what fits.
            if lifecycle == .cancelling { return .resolved(resolution, next: .terminate) }
            let sends = fill(worker)
            return .resolved(resolution, next: sends.isEmpty ? .none : .send(sends))
        }
        if let limit = maxBatchesPerWorker, workers[worker].answeredByProcess >= limit, lifecycle != .cancelling {
            if lifecycle == .running || !queue.isEmpty {
                workers[worker].state = .starting
                return .resolved(resolution, next: .recycle)
            }
        }
        return .resolved(resolution, next: nextCommand(for: worker))
    }

    /// `worker`'s process is gone: it died, broke the protocol, fell silent, or was killed by its
    /// thread (after ``confirmKill(worker:attempt:)``) for a cancellation, a time-out or a limit.
    /// `code` says how. A cancelled batch it held ends as cancelled; the one it was running is
    /// retried under the ``RetryPolicy`` or fails with `code`.
    ///
    /// `running` is the attempt the process was running when it was lost: its frame reached the
    /// process and its answer had not come (`nil`: none, or a loss that is no batch's fault).
    /// Every other batch it held did not run — it waited behind that one, or was dispatched as the
    /// worker was being lost and never reached it — and goes back to the front of the queue,
    /// in order, without counting as an attempt.
    mutating func workerLost(_ worker: Int, _ code: ProcessPoolError.Code, running: Attempt?) -> LossAction {
        var action = LossAction(command: .none, stopped: false)
        if case .busy(let held) = workers[worker].state {
            var requeued: [BatchID] = []
            for item in held {
                guard var batch = batches[item.batch] else { continue }
                if batch.cancelRequested || lifecycle == .cancelling {
                    batches[item.batch] = nil
                    action.resolutions.append(Resolution(continuation: batch.continuation, outcome: .cancelled))
                } else if item.attempt != running || retry.retries(after: batch.attempts, code) {
                    if item.attempt != running { batch.attempts -= 1 }
                    batch.state = .queued
                    batches[item.batch] = batch
                    requeued.append(item.batch)  // first in line: they have waited longest
                } else {
                    batches[item.batch] = nil
                    action.resolutions.append(Resolution(continuation: batch.continuation, outcome: .failed(batch.request.error(code))))
                }
            }
            queue.prepend(contentsOf: requeued)
        }
        switch lifecycle {
        case .running:
            workers[worker].state = .starting
            action.command = .start
        case .draining where !queue.isEmpty:
            workers[worker].state = .starting
            action.command = .start
        case .draining, .cancelling, .stopped:
            workers[worker].state = .gone
        }
        // Re-queued batches go to other workers with room at once, rather than wait for the restart.
        while !queue.isEmpty, let other = leastLoadedWorkerWithRoom() {
            action.dispatches.append(dispatch(queue.removeFirst(), to: other))
        }
        action.stopped = checkStopped()
        return action
    }

    /// `worker` was told goodbye and has been reaped.
    mutating func workerStopped(_ worker: Int) -> Bool {
        workers[worker].state = .gone
        return checkStopped()
    }

    // MARK: Shutdown

    /// Shutdown is asked for: `.drain` runs the queue first; `.cancelPending` fails it and kills
    /// the running attempts. Asking again may escalate a drain to a cancellation.
    mutating func shutdown(_ mode: ProcessPool.ShutdownMode) -> ShutdownAction {
        var action = ShutdownAction(stopped: false)
        switch (lifecycle, mode) {
        case (.stopped, _):
            action.stopped = true
            return action
        case (.cancelling, _), (.draining, .drain):
            return action
        case (.running, .drain):
            lifecycle = .draining
        case (.running, .cancelPending), (.draining, .cancelPending):
            lifecycle = .cancelling
            for id in queue {
                if let batch = batches.removeValue(forKey: id) { action.cancelled.append(batch.continuation) }
            }
            queue.removeAll()
        }
        for index in workers.indices {
            switch workers[index].state {
            case .idle where lifecycle == .cancelling || queue.isEmpty:
                workers[index].state = .stopping
                action.stops.append(index)
            case .busy(let held) where lifecycle == .cancelling:
                action.kills.append((index, held[0].attempt))
            case .down where lifecycle == .cancelling || queue.isEmpty:
                workers[index].state = .gone
            case .down:
                workers[index].state = .starting
                action.starts.append(index)
            case .idle, .busy, .starting, .stopping, .gone:
                break
            }
        }
        action.stopped = checkStopped()
        return action
    }

    // MARK: Invariants

    /// Checks that the ledger and the workers agree; a precondition failure names what broke.
    /// Tests call it after every event.
    func checkInvariants() {
        var running: [BatchID: Attempt] = [:]
        for (index, worker) in workers.enumerated() {
            guard case .busy(let held) = worker.state else { continue }
            precondition(!held.isEmpty && held.count <= 1 + prefetch, "worker \(index) holds \(held.count) batches")
            for item in held {
                precondition(running[item.batch] == nil, "batch \(item.batch) is held by two workers")
                running[item.batch] = item.attempt
                precondition(batches[item.batch]?.state == .dispatched(worker: index, attempt: item.attempt), "worker \(index) holds \(item.batch), whose ledger says \(String(describing: batches[item.batch]?.state))")
            }
        }
        for (id, batch) in batches {
            switch batch.state {
            case .queued: precondition(queue.contains(id), "batch \(id) is queued but not in the queue")
            case .dispatched(_, let attempt): precondition(running[id] == attempt, "batch \(id) is dispatched but no worker runs it")
            }
        }
        precondition(queue.count == Set(queue).count, "a batch is queued twice")
        if !queue.isEmpty { precondition(!workers.indices.contains { room(of: $0) > 0 }, "a batch waits while a worker has room") }
        if lifecycle == .stopped { precondition(workers.allSatisfy { $0.state == .gone } && batches.isEmpty, "stopped with work left") }
    }

    // MARK: Internals

    /// How many more batches `worker` may hold now: none unless it is idle or busy, at most
    /// `1 + prefetch` in all, and no more than its process may answer before it is recycled.
    private func room(of worker: Int) -> Int {
        let held: Int
        switch workers[worker].state {
        case .idle: held = 0
        case .busy(let items): held = items.count
        case .starting, .down, .stopping, .gone: return 0
        }
        var capacity = 1 + prefetch
        if let limit = maxBatchesPerWorker { capacity = min(capacity, limit - workers[worker].answeredByProcess) }
        return max(0, capacity - held)
    }

    /// The worker with the most room (the lowest index among equals): the least loaded one.
    private func leastLoadedWorkerWithRoom() -> Int? {
        var best: (worker: Int, room: Int)?
        for index in workers.indices {
            let room = room(of: index)
            if room > 0, room > (best?.room ?? 0) { best = (index, room) }
        }
        return best?.worker
    }

    /// Marks batch `id` as sent to `worker` (which has room) under a fresh attempt.
    private mutating func dispatch(_ id: BatchID, to worker: Int) -> Dispatch {
        nextAttempt += 1
        let attempt = nextAttempt
        batches[id]!.state = .dispatched(worker: worker, attempt: attempt)
        batches[id]!.attempts += 1
        let item = Held(batch: id, attempt: attempt)
        if case .busy(let held) = workers[worker].state {
            workers[worker].state = .busy(held + [item])
        } else {
            workers[worker].state = .busy([item])
        }
        return Dispatch(worker: worker, generation: workers[worker].generation, attempt: attempt, batch: id, request: batches[id]!.request)
    }

    /// Dispatches queued batches to `worker` while it has room.
    private mutating func fill(_ worker: Int) -> [Dispatch] {
        var sends: [Dispatch] = []
        while room(of: worker) > 0, let id = queue.popFirst() { sends.append(dispatch(id, to: worker)) }
        return sends
    }

    /// What an idle `worker` does next: the next queued batches, or goodbye when the pool winds down.
    private mutating func nextCommand(for worker: Int) -> WorkerCommand {
        switch lifecycle {
        case .cancelling, .stopped:
            workers[worker].state = .stopping
            return .stop
        case .running, .draining:
            let sends = fill(worker)
            if !sends.isEmpty { return .send(sends) }
            if lifecycle == .draining {
                workers[worker].state = .stopping
                return .stop
            }
            return .none
        }
    }

    /// A `.down` slot to start because a batch waits, if there is one.
    private mutating func startDownWorker() -> Int? {
        guard let index = workers.firstIndex(where: { $0.state == .down }) else { return nil }
        workers[index].state = .starting
        return index
    }

    private mutating func checkStopped() -> Bool {
        if lifecycle == .stopped { return true }
        guard lifecycle != .running, workers.allSatisfy({ $0.state == .gone }) else { return false }
        lifecycle = .stopped
        return true
    }
}
