import Testing
@testable import WorkersThreads

@Suite struct ThreadPoolStateMachineTests {
    typealias Machine = ThreadPoolStateMachine<Int>

    @Test func admitsUpToConcurrencyThenQueuesInOrder() {
        var machine = Machine(concurrency: 2, queueCapacity: 10, policy: .suspend)
        #expect(machine.submit(id: 1, waiter: 1) == .run)
        #expect(machine.tryAdmit() == .run)
        #expect(machine.tryAdmit() == nil)
        #expect(machine.submit(id: 3, waiter: 3) == .queued)
        #expect(machine.submit(id: 4, waiter: 4) == .queued)
        guard case .admit(3) = machine.finish() else { Issue.record("expected job 3 admitted"); return }
        guard case .admit(4) = machine.finish() else { Issue.record("expected job 4 admitted"); return }
        guard case .none = machine.finish() else { Issue.record("expected nothing"); return }
        #expect(machine.running == 1)
    }

    @Test(arguments: [
        (ThreadPool.QueueFullPolicy.reject, Machine.SubmitAction.reject(ThreadPoolError(.queueFull))),
        (.runInCaller, .runInCaller),
        (.suspend, .queued),
    ])
    func aFullQueueFollowsThePolicy(policy: ThreadPool.QueueFullPolicy, expected: Machine.SubmitAction) {
        var machine = Machine(concurrency: 1, queueCapacity: 1, policy: policy)
        #expect(machine.submit(id: 1, waiter: 1) == .run)
        #expect(machine.submit(id: 2, waiter: 2) == .queued)
        #expect(machine.submit(id: 3, waiter: 3) == expected)
    }

    @Test func aZeroCapacityQueueRejectsEverythingThatCannotRunNow() {
        var machine = Machine(concurrency: 1, queueCapacity: 0, policy: .reject)
        #expect(machine.submit(id: 1, waiter: 1) == .run)
        #expect(machine.submit(id: 2, waiter: 2) == .reject(ThreadPoolError(.queueFull)))
    }

    @Test func cancellingAQueuedJobRemovesItOnce() {
        var machine = Machine(concurrency: 1, queueCapacity: 10, policy: .suspend)
        _ = machine.submit(id: 1, waiter: 1)
        _ = machine.submit(id: 2, waiter: 2)
        _ = machine.submit(id: 3, waiter: 3)
        #expect(machine.cancel(id: 2) == 2)
        #expect(machine.cancel(id: 2) == nil)
        #expect(machine.cancel(id: 1) == nil)  // running jobs cannot be taken back
        guard case .admit(3) = machine.finish() else { Issue.record("expected job 3 admitted"); return }
    }

    @Test func drainRunsTheQueueThenTerminates() {
        var machine = Machine(concurrency: 1, queueCapacity: 10, policy: .suspend)
        _ = machine.submit(id: 1, waiter: 1)
        _ = machine.submit(id: 2, waiter: 2)
        guard case .shutDown(let failed, false) = machine.shutdown(.drain) else { Issue.record("bad action"); return }
        #expect(failed.isEmpty)
        #expect(machine.submit(id: 3, waiter: 3) == .reject(ThreadPoolError(.shutDown)))
        guard case .admit(2) = machine.finish() else { Issue.record("expected job 2 admitted"); return }
        guard case .terminated = machine.finish() else { Issue.record("expected termination"); return }
        #expect(machine.lifecycle == .terminated)
        guard case .alreadyShuttingDown(true) = machine.shutdown(.drain) else { Issue.record("bad action"); return }
    }

    @Test func cancelPendingFailsTheQueueAndWaitsForRunningJobs() {
        var machine = Machine(concurrency: 1, queueCapacity: 10, policy: .suspend)
        _ = machine.submit(id: 1, waiter: 1)
        _ = machine.submit(id: 2, waiter: 2)
        _ = machine.submit(id: 3, waiter: 3)
        guard case .shutDown(let failed, false) = machine.shutdown(.cancelPending) else { Issue.record("bad action"); return }
        #expect(failed == [2, 3])
        guard case .terminated = machine.finish() else { Issue.record("expected termination"); return }
    }

    @Test func cancelPendingEscalatesADrain() {
        var machine = Machine(concurrency: 1, queueCapacity: 10, policy: .suspend)
        _ = machine.submit(id: 1, waiter: 1)
        _ = machine.submit(id: 2, waiter: 2)
        _ = machine.shutdown(.drain)
        guard case .shutDown(let failed, false) = machine.shutdown(.cancelPending) else { Issue.record("bad action"); return }
        #expect(failed == [2])
        guard case .alreadyShuttingDown(false) = machine.shutdown(.drain) else { Issue.record("bad action"); return }
    }

    @Test func anIdlePoolTerminatesAtOnce() {
        var machine = Machine(concurrency: 4, queueCapacity: 10, policy: .suspend)
        guard case .shutDown([], true) = machine.shutdown(.drain) else { Issue.record("bad action"); return }
        #expect(machine.tryAdmit() == .reject(ThreadPoolError(.shutDown)))
    }
}

@Suite struct WorkerThreadsStateTests {
    @Test func startsThreadsUpToTheMaximumWhenNoneIsIdle() {
        var state = WorkerThreadsState(minThreads: 0, maxThreads: 2)
        #expect(state.jobEnqueued(queued: 1) == .startThread(number: 1))
        #expect(state.jobEnqueued(queued: 1) == .none)  // the starting thread will take it
        #expect(state.jobEnqueued(queued: 2) == .startThread(number: 2))
        #expect(state.jobEnqueued(queued: 3) == .none)  // at the maximum: it waits
        #expect(state.threads == 2)
    }

    @Test func oneIdleThreadSpinsAndTheOthersPark() {
        var state = WorkerThreadsState(minThreads: 0, maxThreads: 4)
        _ = state.jobEnqueued(queued: 1)
        _ = state.jobEnqueued(queued: 2)
        state.threadStarted()
        state.threadStarted()
        #expect(state.threadIdle() == .spin)
        #expect(state.threadIdle() == .park(timeout: true))
        #expect(state.jobEnqueued(queued: 1) == .none)  // the spinner takes it
        #expect(state.jobEnqueued(queued: 2) == .wakeOne)
        #expect(state.jobEnqueued(queued: 3) == .startThread(number: 3))
        #expect(state.threadWoke(timedOut: false, queued: 3) == false)
    }

    @Test func idleThreadsAboveTheMinimumRetireAfterTheKeepAlive() {
        var state = WorkerThreadsState(minThreads: 1, maxThreads: 4)
        _ = state.jobEnqueued(queued: 1)
        _ = state.jobEnqueued(queued: 2)
        state.threadStarted()
        state.threadStarted()
        #expect(state.threadIdle() == .spin)
        #expect(state.threadIdle() == .park(timeout: true))
        state.spinEnded()
        #expect(state.threadWoke(timedOut: true, queued: 0) == true)
        #expect(state.threads == 1)
        #expect(state.threadIdle() == .spin)
        state.spinEnded()
        #expect(state.threadIdle(justSpun: true) == .park(timeout: false))  // spun for nothing; at the minimum: no keep-alive
    }

    @Test func aThreadThatSpunForNothingParks() {
        var state = WorkerThreadsState(minThreads: 0, maxThreads: 1)
        _ = state.jobEnqueued(queued: 1)
        state.threadStarted()
        #expect(state.threadIdle() == .spin)
        state.spinEnded()
        #expect(state.threadIdle(justSpun: true) == .park(timeout: true))
        #expect(state.jobEnqueued(queued: 1) == .wakeOne)
    }

    @Test func stopWakesParkedThreadsAndTheyExit() {
        var state = WorkerThreadsState(minThreads: 2, maxThreads: 2)
        _ = state.jobEnqueued(queued: 1)
        _ = state.jobEnqueued(queued: 2)
        state.threadStarted()
        state.threadStarted()
        _ = state.threadIdle()  // spins
        _ = state.threadIdle()  // parks
        #expect(state.stop() == 1)
        #expect(state.threadWoke(timedOut: false, queued: 0) == false)
        #expect(state.threadIdle() == .exit)
        state.spinEnded()
        #expect(state.threadIdle() == .exit)
        #expect(state.allExited)
    }
}

@Suite struct LoopSpawnerTests {
    @Test func untimedInputsDoubleTheLoopsUpToTheWidth() async {
        let spawner = LoopSpawner(width: 5)
        spawner.inputTaken()  // 1 loop, untimed: ask for 2
        #expect(await spawner.nextSpawn())
        spawner.inputTaken()  // 2 loops: ask for 4
        #expect(await spawner.nextSpawn())
        #expect(await spawner.nextSpawn())
        spawner.inputTaken()  // 4 loops: capped at 5
        #expect(await spawner.nextSpawn())
        #expect(!spawner.mayGrow)
        for _ in 0..<5 { spawner.loopEnded() }
        #expect(await !spawner.nextSpawn())
    }

    @Test func fastBodiesStopTheGrowth() async {
        let spawner = LoopSpawner(width: 64)
        spawner.bodyTook(.microseconds(1))
        spawner.inputTaken()
        spawner.loopEnded()
        #expect(await !spawner.nextSpawn())  // no loop was asked for; the only loop ended
    }

    @Test func slowBodiesKeepGrowing() async {
        let spawner = LoopSpawner(width: 64)
        spawner.bodyTook(.milliseconds(10))
        spawner.inputTaken()
        #expect(await spawner.nextSpawn())
    }

    @Test func aWidthOfOneNeverGrows() {
        #expect(!LoopSpawner(width: 1).mayGrow)
    }
}
