import Testing
@testable import WorkersProcesses

extension SupervisorStateMachine {
    /// `worker` is lost while it runs the first batch it holds (if any), whose frame reached it.
    mutating func workerLostAfterSend(_ worker: Int, _ code: ProcessPoolError.Code) -> LossAction {
        workerLost(worker, code, running: held(by: worker).first?.attempt)
    }

    /// The batches `worker` holds, in dispatch order.
    func held(by worker: Int) -> [Held] {
        if case .busy(let held) = workers[worker].state { return held }
        return []
    }
}

/// The supervisor's state machine, walked without processes or threads. A caller is an `Int`.
@Suite struct SupervisorStateMachineTests {
    typealias Machine = SupervisorStateMachine<Int>

    static func request(_ name: String = "job", timeout: Duration? = nil) -> BatchRequest {
        // The frame is never sent here; any bytes do.
        BatchRequest(jobName: name, frame: [], count: 1, firstIndex: nil, timeout: timeout)
    }

    static let answer = BatchAnswer(outputs: [1, 2, 3], nanoseconds: 10)
    static let crash = ProcessPoolError.Code.workerCrashed(signal: 9, exitCode: nil)

    /// A machine whose `workers` slots have each started their first process.
    static func started(workers: Int = 1, retry: RetryPolicy = .none, maxBatches: Int? = nil, prefetch: Int = 0) -> Machine {
        var machine = Machine(workers: workers, retry: retry, maxBatchesPerWorker: maxBatches, prefetch: prefetch)
        for index in 0..<workers {
            guard case .none = machine.workerStarted(index, generation: 1) else { fatalError("a fresh worker had work") }
        }
        machine.checkInvariants()
        return machine
    }

    static func sent(_ action: Machine.SubmitAction) -> Machine.Dispatch? {
        if case .send(let dispatch) = action { return dispatch }
        return nil
    }

    /// The one batch a worker's command sends, if it sends exactly one.
    static func sentOne(_ command: Machine.WorkerCommand?) -> Machine.Dispatch? {
        if case .send(let dispatches)? = command, dispatches.count == 1 { return dispatches[0] }
        return nil
    }

    static func resolved(_ action: Machine.AnswerAction) -> (Machine.Resolution, Machine.WorkerCommand)? {
        if case .resolved(let resolution, let next) = action { return (resolution, next) }
        return nil
    }

    @Test func anIdleWorkerTakesABatchAtOnceAndTheNextWaits() throws {
        var machine = Self.started()
        let first = try #require(Self.sent(machine.submit(Self.request(), id: 1, continuation: 100)))
        #expect(first.worker == 0 && first.batch == 1 && first.generation == 1)
        guard case .queued(start: nil) = machine.submit(Self.request(), id: 2, continuation: 200) else { Issue.record("not queued"); return }
        #expect(machine.queuedCount == 1)
        machine.checkInvariants()
        let (resolution, next) = try #require(Self.resolved(machine.answer(worker: 0, attempt: first.attempt, .success(Self.answer))))
        #expect(resolution.continuation == 100 && resolution.outcome == .answered(Self.answer))
        let second = try #require(Self.sentOne(next), "the next batch was not sent")
        #expect(second.batch == 2 && second.attempt != first.attempt)
        machine.checkInvariants()
    }

    /// The old pool's bug: a cancel that arrives after the answer, when the worker already runs
    /// someone else's batch, must not touch that batch.
    @Test func aCancelAfterTheAnswerIsANoOp() throws {
        var machine = Self.started()
        let mine = try #require(Self.sent(machine.submit(Self.request(), id: 1, continuation: 1)))
        _ = machine.answer(worker: 0, attempt: mine.attempt, .success(Self.answer))
        let theirs = try #require(Self.sent(machine.submit(Self.request(), id: 2, continuation: 2)))
        guard case .none = machine.cancel(1) else { Issue.record("a late cancel did something"); return }
        #expect(!machine.confirmKill(worker: 0, attempt: mine.attempt))
        #expect(machine.confirmKill(worker: 0, attempt: theirs.attempt))
        machine.checkInvariants()
    }

    /// The other window: the cancel asks for a kill, the answer comes before the worker's thread
    /// acts, and the worker moves on to the next caller. The kill, when it is carried out, names
    /// the old attempt and is refused.
    @Test func aKillThatArrivesAfterTheAnswerIsRefused() throws {
        var machine = Self.started()
        let mine = try #require(Self.sent(machine.submit(Self.request(), id: 1, continuation: 1)))
        guard case .kill(worker: 0, let attempt) = machine.cancel(1) else { Issue.record("no kill asked"); return }
        #expect(attempt == mine.attempt)
        guard case .queued = machine.submit(Self.request(), id: 2, continuation: 2) else { Issue.record("not queued"); return }
        let (resolution, next) = try #require(Self.resolved(machine.answer(worker: 0, attempt: mine.attempt, .success(Self.answer))))
        #expect(resolution.continuation == 1 && resolution.outcome == .cancelled)
        let theirs = try #require(Self.sentOne(next), "the next batch was not sent")
        #expect(!machine.confirmKill(worker: 0, attempt: attempt))  // the worker's thread does nothing
        let (theirResolution, _) = try #require(Self.resolved(machine.answer(worker: 0, attempt: theirs.attempt, .success(Self.answer))))
        #expect(theirResolution.continuation == 2 && theirResolution.outcome == .answered(Self.answer))
        machine.checkInvariants()
    }

    @Test func aConfirmedKillEndsTheBatchAsCancelledAndReplacesTheWorker() throws {
        var machine = Self.started()
        let mine = try #require(Self.sent(machine.submit(Self.request(), id: 1, continuation: 1)))
        guard case .kill = machine.cancel(1) else { Issue.record("no kill asked"); return }
        guard case .none = machine.cancel(1) else { Issue.record("a second cancel asked again"); return }
        #expect(machine.confirmKill(worker: 0, attempt: mine.attempt))
        let loss = machine.workerLostAfterSend(0, Self.crash)
        #expect(loss.resolutions.map(\.continuation) == [1] && loss.resolutions.first?.outcome == .cancelled)
        guard case .start = loss.command else { Issue.record("not replaced"); return }
        #expect(machine.workers[0].state == .starting)
        machine.checkInvariants()
    }

    /// A batch dispatched to a worker as its thread was losing it never reached the process: it
    /// is queued again, first in line, without using up an attempt, even with no retries.
    @Test func aBatchThatNeverReachedALostWorkerIsQueuedAgain() throws {
        var machine = Self.started()
        let first = try #require(Self.sent(machine.submit(Self.request(), id: 1, continuation: 1)))
        _ = machine.answer(worker: 0, attempt: first.attempt, .success(Self.answer))
        let unsent = try #require(Self.sent(machine.submit(Self.request(), id: 2, continuation: 2)))
        let loss = machine.workerLost(0, Self.crash, running: nil)  // 2's frame never went out
        #expect(loss.resolutions.isEmpty && machine.state(of: 2) == .queued)
        let again = try #require(Self.sentOne(machine.workerStarted(0, generation: 2)), "not re-sent")
        #expect(again.batch == 2 && again.attempt != unsent.attempt)
        // Now it did reach the worker: a crash is a real attempt, and RetryPolicy.none fails it.
        let failed = machine.workerLostAfterSend(0, Self.crash)
        #expect(failed.resolutions.map(\.continuation) == [2])
        machine.checkInvariants()
    }

    @Test func aQueuedCancelResumesAtOnce() throws {
        var machine = Self.started()
        _ = machine.submit(Self.request(), id: 1, continuation: 1)
        _ = machine.submit(Self.request(), id: 2, continuation: 2)
        guard case .resume(2) = machine.cancel(2) else { Issue.record("not resumed"); return }
        #expect(machine.queuedCount == 0 && machine.state(of: 2) == nil)
        machine.checkInvariants()
    }

    @Test func aCrashIsRetriedOnAFreshWorkerUpToTheLimit() throws {
        var machine = Self.started(retry: RetryPolicy(maxAttempts: 2))
        let first = try #require(Self.sent(machine.submit(Self.request(), id: 1, continuation: 1)))
        let loss = machine.workerLostAfterSend(0, Self.crash)
        #expect(loss.resolutions.isEmpty && machine.state(of: 1) == .queued)
        let second = try #require(Self.sentOne(machine.workerStarted(0, generation: 2)), "not re-sent")
        #expect(second.batch == 1 && second.generation == 2 && second.attempt != first.attempt)
        // The superseded attempt's answer, had it come, is dropped.
        guard case .dropped = machine.answer(worker: 0, attempt: first.attempt, .success(Self.answer)) else { Issue.record("stale answer taken"); return }
        let final = machine.workerLostAfterSend(0, Self.crash)
        #expect(final.resolutions.map(\.outcome) == [.failed(ProcessPoolError(Self.crash, jobName: "job"))])
        #expect(machine.workers[0].restarts == 1)
        machine.checkInvariants()
    }

    @Test func aRetriedBatchGoesStraightToAnotherIdleWorker() throws {
        var machine = Self.started(workers: 2, retry: RetryPolicy(maxAttempts: 3))
        let first = try #require(Self.sent(machine.submit(Self.request(), id: 1, continuation: 1)))
        let loss = machine.workerLostAfterSend(first.worker, .workerLost)
        #expect(loss.dispatches.map(\.batch) == [1] && loss.dispatches.first?.worker == 1 - first.worker)
        machine.checkInvariants()
    }

    @Test(arguments: [
        (ProcessPoolError.Code.timedOut, false), (.timedOut, true), (.workerLost, false), (.resourceLimit, false),
        (.protocolViolation("x"), false),
    ])
    func lossesAreRetriedAsThePolicySays(_ code: ProcessPoolError.Code, _ retriesTimeouts: Bool) throws {
        var machine = Self.started(retry: RetryPolicy(maxAttempts: 2, retriesTimeouts: retriesTimeouts))
        let first = try #require(Self.sent(machine.submit(Self.request(), id: 1, continuation: 1)))
        #expect(machine.confirmKill(worker: 0, attempt: first.attempt))
        let loss = machine.workerLostAfterSend(0, code)
        let retried = RetryPolicy(maxAttempts: 2, retriesTimeouts: retriesTimeouts).retries(after: 1, code)
        #expect(loss.resolutions.isEmpty == retried)
        if !retried { #expect(loss.resolutions.map(\.outcome) == [.failed(ProcessPoolError(code, jobName: "job"))]) }
        machine.checkInvariants()
    }

    @Test func answersForNoRunningAttemptAreDropped() {
        var machine = Self.started()
        guard case .dropped = machine.answer(worker: 0, attempt: 42, .success(Self.answer)) else { Issue.record("taken"); return }
        machine.checkInvariants()
    }

    @Test func drainRunsTheQueueThenStopsEachWorker() throws {
        var machine = Self.started()
        let first = try #require(Self.sent(machine.submit(Self.request(), id: 1, continuation: 1)))
        _ = machine.submit(Self.request(), id: 2, continuation: 2)
        let shutdown = machine.shutdown(.drain)
        #expect(shutdown.cancelled.isEmpty && shutdown.kills.isEmpty && shutdown.stops.isEmpty && !shutdown.stopped)
        guard case .reject(let error) = machine.submit(Self.request(), id: 3, continuation: 3) else { Issue.record("taken"); return }
        #expect(error.code == .shutDown)
        let second = try #require(Self.sentOne(Self.resolved(machine.answer(worker: 0, attempt: first.attempt, .success(Self.answer)))?.1), "the queue was not drained")
        guard case .stop? = Self.resolved(machine.answer(worker: 0, attempt: second.attempt, .success(Self.answer)))?.1 else {
            Issue.record("not stopped"); return
        }
        #expect(machine.lifecycle == .draining)
        let stopped = machine.workerStopped(0)
        #expect(stopped && machine.lifecycle == .stopped)
        machine.checkInvariants()
    }

    @Test func cancelPendingFailsTheQueueAndKillsTheRunning() throws {
        var machine = Self.started(workers: 2)
        let one = try #require(Self.sent(machine.submit(Self.request(), id: 1, continuation: 1)))
        let two = try #require(Self.sent(machine.submit(Self.request(), id: 2, continuation: 2)))
        _ = machine.submit(Self.request(), id: 3, continuation: 3)
        let shutdown = machine.shutdown(.cancelPending)
        #expect(shutdown.cancelled == [3])
        #expect(Set(shutdown.kills.map(\.attempt)) == [one.attempt, two.attempt])
        #expect(!shutdown.stopped)
        let loss = machine.workerLostAfterSend(one.worker, Self.crash)
        #expect(loss.resolutions.map(\.continuation) == [1] && loss.resolutions.first?.outcome == .cancelled)
        guard case .none = loss.command else { Issue.record("a worker was replaced while cancelling"); return }
        #expect(!loss.stopped)
        let other = machine.workerLostAfterSend(two.worker, Self.crash)
        #expect(other.resolutions.map(\.continuation) == [2] && other.resolutions.first?.outcome == .cancelled)
        #expect(other.stopped && machine.lifecycle == .stopped)
        machine.checkInvariants()
    }

    @Test func aFailedStartFailsOneQueuedBatchAndTheSlotComesBackWhenNeeded() throws {
        var machine = Self.started()
        _ = try #require(Self.sent(machine.submit(Self.request(), id: 1, continuation: 1)))
        _ = machine.submit(Self.request(), id: 2, continuation: 2)
        _ = machine.workerLostAfterSend(0, Self.crash)  // batch 1 fails; the slot restarts
        let failed = machine.workerStartFailed(0, ProcessPoolError(.spawnFailed(errno: 2)))
        #expect(failed.resolutions.map(\.continuation) == [2] && failed.resolutions.first?.outcome == .failed(ProcessPoolError(.spawnFailed(errno: 2), jobName: "job")))
        #expect(machine.workers[0].state == .down)
        guard case .queued(start: 0) = machine.submit(Self.request(), id: 3, continuation: 3) else { Issue.record("the slot was not started"); return }
        #expect(machine.workers[0].state == .starting)
        machine.checkInvariants()
    }

    /// A slot that cannot start while another worker runs (a remote slot whose agent drained)
    /// fails nothing: the live worker runs the queue, and the slot comes back with new work.
    @Test func aFailedStartFailsNothingWhileAnotherWorkerRuns() throws {
        var machine = Self.started(workers: 2)
        let running = try #require(Self.sent(machine.submit(Self.request(), id: 1, continuation: 1)))
        _ = machine.workerLost(1 - running.worker, .workerLost, running: nil)  // the other slot restarts
        _ = machine.submit(Self.request(), id: 2, continuation: 2)
        let failed = machine.workerStartFailed(1 - running.worker, ProcessPoolError(.placementFailed("no agent with a free slot")))
        #expect(failed.resolutions.isEmpty && machine.queuedCount == 1)
        guard case .none = failed.command else { Issue.record("retried at once: \(failed.command)"); return }
        #expect(machine.workers[1 - running.worker].state == .down)
        machine.checkInvariants()
        // The live worker takes the queue.
        #expect(Self.sentOne(Self.resolved(machine.answer(worker: running.worker, attempt: running.attempt, .success(Self.answer)))?.1)?.batch == 2)
        machine.checkInvariants()
    }

    @Test func maxBatchesPerWorkerRecyclesTheProcess() throws {
        var machine = Self.started(maxBatches: 1)
        let first = try #require(Self.sent(machine.submit(Self.request(), id: 1, continuation: 1)))
        guard case .recycle? = Self.resolved(machine.answer(worker: 0, attempt: first.attempt, .success(Self.answer)))?.1 else {
            Issue.record("not recycled"); return
        }
        _ = machine.workerStarted(0, generation: 2)
        #expect(machine.workers[0].restarts == 1 && machine.workers[0].answered == 1)
        machine.checkInvariants()
    }

    // MARK: Prefetch

    /// Two workers holding up to two batches each: the least loaded takes each batch, and the
    /// fifth waits.
    @Test func prefetchFillsTheLeastLoadedWorkerFirstUpToItsCapacity() throws {
        var machine = Self.started(workers: 2, prefetch: 1)
        var workers: [Int] = []
        for id in 1...4 {
            workers.append(try #require(Self.sent(machine.submit(Self.request(), id: UInt64(id), continuation: id))).worker)
            machine.checkInvariants()
        }
        #expect(workers == [0, 1, 0, 1])
        guard case .queued(start: nil) = machine.submit(Self.request(), id: 5, continuation: 5) else { Issue.record("not queued"); return }
        #expect(machine.held(by: 0).map(\.batch) == [1, 3] && machine.held(by: 1).map(\.batch) == [2, 4])
        // An answer makes room for exactly one more, on the worker that answered.
        let first = machine.held(by: 0)[0]
        let (resolution, next) = try #require(Self.resolved(machine.answer(worker: 0, attempt: first.attempt, .success(Self.answer))))
        #expect(resolution.continuation == 1)
        #expect(Self.sentOne(next)?.batch == 5 && machine.held(by: 0).map(\.batch) == [3, 5])
        machine.checkInvariants()
    }

    /// A fresh worker with batches queued is sent as many as it may hold at once.
    @Test func aStartedWorkerIsSentUpToItsCapacity() throws {
        var machine = Machine(workers: 1, prefetch: 2)
        for id in 1...4 {
            guard case .queued = machine.submit(Self.request(), id: UInt64(id), continuation: id) else { Issue.record("\(id) not queued"); return }
        }
        guard case .send(let sends) = machine.workerStarted(0, generation: 1) else { Issue.record("nothing sent"); return }
        #expect(sends.map(\.batch) == [1, 2, 3] && machine.queuedCount == 1)
        machine.checkInvariants()
    }

    /// The frames of two batches can reach the worker in another order than they were
    /// dispatched: whichever answer comes is taken.
    @Test func answersAreTakenInTheOrderTheWorkerRanThem() throws {
        var machine = Self.started(prefetch: 1)
        let one = try #require(Self.sent(machine.submit(Self.request(), id: 1, continuation: 1)))
        let two = try #require(Self.sent(machine.submit(Self.request(), id: 2, continuation: 2)))
        #expect(Self.resolved(machine.answer(worker: 0, attempt: two.attempt, .success(Self.answer)))?.0.continuation == 2)
        #expect(machine.confirmKill(worker: 0, attempt: one.attempt) && !machine.confirmKill(worker: 0, attempt: two.attempt))
        #expect(Self.resolved(machine.answer(worker: 0, attempt: one.attempt, .success(Self.answer)))?.0.continuation == 1)
        #expect(machine.workers[0].state == .idle)
        machine.checkInvariants()
    }

    /// A lost worker charges only the batch it was running; the one waiting behind it did not
    /// run, goes back first in line without an attempt counted, and straight to a worker with room.
    @Test func aLossChargesOnlyTheRunningBatch() throws {
        var machine = Self.started(workers: 2, prefetch: 1)
        for id in 1...3 { _ = machine.submit(Self.request(), id: UInt64(id), continuation: id) }  // 1, 3 on worker 0; 2 on 1
        let loss = machine.workerLostAfterSend(0, Self.crash)  // RetryPolicy.none: 1 fails
        #expect(loss.resolutions.map(\.continuation) == [1])
        #expect(loss.dispatches.map(\.batch) == [3] && loss.dispatches.first?.worker == 1)
        #expect(machine.held(by: 1).map(\.batch) == [2, 3])
        // A loss with nothing running charges no one; the first real attempt after it is
        // still within maxAttempts 2.
        var retrying = Self.started(retry: RetryPolicy(maxAttempts: 2), prefetch: 1)
        _ = retrying.submit(Self.request(), id: 1, continuation: 1)
        _ = retrying.submit(Self.request(), id: 2, continuation: 2)
        _ = retrying.workerLost(0, Self.crash, running: nil)  // no batch's fault: nothing charged
        let sends = try #require({ if case .send(let sends) = retrying.workerStarted(0, generation: 2) { return sends } else { return nil } }())
        #expect(sends.map(\.batch) == [1, 2])
        let first = retrying.workerLostAfterSend(0, Self.crash)
        #expect(first.resolutions.isEmpty, "a first real attempt was failed under maxAttempts 2")
        machine.checkInvariants()
        retrying.checkInvariants()
    }

    /// Cancelling a batch that waits behind another kills the worker (its frame cannot be called
    /// back); the running batch was not at fault and runs again, uncharged, even with no retries.
    @Test func cancellingAWaitingBatchRequeuesTheRunningOne() throws {
        var machine = Self.started(prefetch: 1)
        let running = try #require(Self.sent(machine.submit(Self.request(), id: 1, continuation: 1)))
        let waiting = try #require(Self.sent(machine.submit(Self.request(), id: 2, continuation: 2)))
        guard case .kill(worker: 0, let attempt) = machine.cancel(2) else { Issue.record("no kill asked"); return }
        #expect(attempt == waiting.attempt && machine.confirmKill(worker: 0, attempt: attempt))
        let loss = machine.workerLost(0, Self.crash, running: nil)  // the slot charges no one: 2 was not running
        #expect(loss.resolutions.map(\.continuation) == [2] && loss.resolutions.first?.outcome == .cancelled)
        #expect(machine.state(of: 1) == .queued)
        let again = try #require(Self.sentOne(machine.workerStarted(0, generation: 2)))
        #expect(again.batch == 1 && again.attempt != running.attempt)
        machine.checkInvariants()
    }

    /// In a cancellation, a worker whose named attempt answered before the kill still holds
    /// another batch: it is told to terminate, and the batch ends as cancelled.
    @Test func aCancellationTerminatesAWorkerThatStillHoldsBatches() throws {
        var machine = Self.started(prefetch: 1)
        let one = try #require(Self.sent(machine.submit(Self.request(), id: 1, continuation: 1)))
        _ = machine.submit(Self.request(), id: 2, continuation: 2)
        let shutdown = machine.shutdown(.cancelPending)
        #expect(shutdown.kills.map(\.attempt) == [one.attempt])
        let (resolution, next) = try #require(Self.resolved(machine.answer(worker: 0, attempt: one.attempt, .success(Self.answer))))
        #expect(resolution.outcome == .answered(Self.answer))
        guard case .terminate = next else { Issue.record("not terminated: \(next)"); return }
        let loss = machine.workerLost(0, Self.crash, running: nil)
        #expect(loss.resolutions.map(\.continuation) == [2] && loss.resolutions.first?.outcome == .cancelled && loss.stopped)
        machine.checkInvariants()
    }

    /// A worker is never sent more than its process may answer before it is recycled.
    @Test func prefetchStopsAtTheRecycleLimit() throws {
        var machine = Self.started(maxBatches: 2, prefetch: 3)
        for id in 1...3 { _ = machine.submit(Self.request(), id: UInt64(id), continuation: id) }
        #expect(machine.held(by: 0).count == 2 && machine.queuedCount == 1)
        _ = machine.answer(worker: 0, attempt: machine.held(by: 0)[0].attempt, .success(Self.answer))
        #expect(machine.held(by: 0).count == 1 && machine.queuedCount == 1)
        guard case .recycle? = Self.resolved(machine.answer(worker: 0, attempt: machine.held(by: 0)[0].attempt, .success(Self.answer)))?.1 else {
            Issue.record("not recycled"); return
        }
        machine.checkInvariants()
    }

    // MARK: Every interleaving

    /// What can happen to a running batch A while batch B waits behind it on the same worker.
    enum Event: CaseIterable, CustomStringConvertible {
        case answer, cancel, crash, timeout, shutdown, killFromCancel
        var description: String { "\(self)" }
    }

    /// Runs every order of the events (each at most once) against one worker and checks that both
    /// batches end exactly once, that B never fails because of what happened to A, and that a
    /// kill is only ever carried out on the attempt it names. With `prefetch` 1, B waits in the
    /// worker behind A rather than in the queue.
    @Test(arguments: [0, 1])
    func everyInterleavingOfCancelAnswerCrashTimeoutAndShutdown(prefetch: Int) {
        var orders = 0
        for order in permutations(Event.allCases) {
            orders += 1
            var machine = Self.started(retry: RetryPolicy(maxAttempts: 2), prefetch: prefetch)
            var ended: [Int: Machine.Outcome] = [:]
            var pendingKills: [UInt64] = []
            var shutDown = false
            func end(_ resolution: Machine.Resolution?) {
                guard let resolution else { return }
                #expect(ended[resolution.continuation] == nil, "\(order): batch \(resolution.continuation) ended twice")
                ended[resolution.continuation] = resolution.outcome
            }
            func serve(_ command: Machine.WorkerCommand) {
                switch command {
                case .start, .recycle: serve(machine.workerStarted(0, generation: UInt64(machine.workers[0].restarts + 2)))
                case .stop: _ = machine.workerStopped(0)
                case .terminate: lose(machine.workerLost(0, Self.crash, running: nil))
                case .none, .send: break
                }
            }
            func lose(_ loss: Machine.LossAction) {
                for resolution in loss.resolutions { end(resolution) }
                serve(loss.command)
            }
            // As the slot's thread does: the running batch is charged only if it is the cancelled one.
            func killForCancel(_ attempt: UInt64) {
                guard machine.confirmKill(worker: 0, attempt: attempt) else { return }
                let running = machine.held(by: 0).first?.attempt
                lose(machine.workerLost(0, Self.crash, running: running == attempt ? running : nil))
            }
            guard case .send(let a) = machine.submit(Self.request(), id: 1, continuation: 1) else { Issue.record("A not sent"); continue }
            switch machine.submit(Self.request(), id: 2, continuation: 2) {
            case .send: #expect(prefetch == 1, "B was sent to a busy worker without prefetch")
            case .queued: #expect(prefetch == 0, "B was queued while the worker had room")
            case .reject: Issue.record("B was refused")
            }
            for event in order {
                switch event {
                case .answer:
                    // Only a live worker answers, and only the attempt it was sent.
                    guard machine.confirmKill(worker: 0, attempt: a.attempt) else { break }
                    if case .resolved(let resolution, let next) = machine.answer(worker: 0, attempt: a.attempt, .success(Self.answer)) {
                        end(resolution)
                        serve(next)
                    }
                case .cancel:
                    switch machine.cancel(1) {
                    case .none: break
                    case .resume(let continuation): end(Machine.Resolution(continuation: continuation, outcome: .cancelled))
                    case .kill(_, let attempt): pendingKills.append(attempt)
                    }
                case .timeout:
                    // Only the running batch times out.
                    guard machine.held(by: 0).first?.attempt == a.attempt else { break }
                    lose(machine.workerLostAfterSend(0, .timedOut))
                case .killFromCancel:
                    guard let attempt = pendingKills.popLast() else { break }
                    killForCancel(attempt)
                case .crash:
                    guard machine.workers[0].state != .gone, machine.workers[0].state != .starting else { break }
                    lose(machine.workerLostAfterSend(0, Self.crash))
                case .shutdown:
                    shutDown = true
                    let action = machine.shutdown(.cancelPending)
                    for continuation in action.cancelled { end(Machine.Resolution(continuation: continuation, outcome: .cancelled)) }
                    pendingKills += action.kills.map(\.attempt)
                    for _ in action.stops { _ = machine.workerStopped(0) }
                }
                machine.checkInvariants()
            }
            // Let the rest happen: pending kills are carried out, whatever runs answers.
            while let attempt = pendingKills.popLast() { killForCancel(attempt) }
            var rounds = 0
            while let running = machine.held(by: 0).first, rounds < 4 {
                rounds += 1
                if case .resolved(let resolution, let next) = machine.answer(worker: 0, attempt: running.attempt, .success(Self.answer)) {
                    #expect(resolution.continuation == Int(running.batch))
                    end(resolution)
                    serve(next)
                }
            }
            machine.checkInvariants()
            #expect(ended.count == 2, "\(order): \(ended)")
            switch ended[2] {
            case .answered?: break
            case .cancelled? where shutDown: break
            default: Issue.record("\(order): the innocent batch B ended \(String(describing: ended[2]))")
            }
        }
        #expect(orders == 720)
    }

    func permutations<T>(_ items: [T]) -> [[T]] {
        guard items.count > 1 else { return [items] }
        var result: [[T]] = []
        for index in items.indices {
            var rest = items
            let first = rest.remove(at: index)
            for tail in permutations(rest) { result.append([first] + tail) }
        }
        return result
    }
}
