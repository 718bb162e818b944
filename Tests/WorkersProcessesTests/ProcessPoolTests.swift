#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import WorkersCore
import WorkersTestJobs
import WorkersThreads
import Logging
import MetricsTestKit
import ServiceLifecycle
import WorkersServiceLifecycle
@testable import WorkersProcesses

/// The test worker executable.
let workerExecutable = TestPrograms.worker

func makePool(workers: Int = 2, maxJobsPerWorker: Int? = nil, retry: RetryPolicy = .none) async throws -> ProcessPool {
    try await ProcessPool(workers: workers, jobs: TestJobs.all, executable: workerExecutable, maxJobsPerWorker: maxJobsPerWorker, retry: retry)
}

func temporaryPath() -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("workers-\(UUID().uuidString)").path
}

func isAlive(_ pid: Int32) -> Bool { kill(pid, 0) == 0 }

/// Waits until the pool's only worker runs a batch (there is no event for it).
func untilBusy(_ pool: ProcessPool) async {
    let deadline = ContinuousClock.now.advanced(by: .seconds(30))
    while !pool.workerInfo[0].isBusy, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(1)) }
}

@Suite(.timeLimit(.minutes(2))) struct ProcessPoolTests {
    @Test func runsJobsInWorkerProcesses() async throws {
        let pool = try await makePool()
        #expect(try await pool.run(Square.self, 12) == 144)
        #expect(try await pool.run(Echo.self, [1, 2, 3]) == [1, 2, 3])
        let who = try await pool.run(WhoAmI.self, 0)
        #expect([0, 1].contains(who[0]))
        #expect(Int32(who[1]) != getpid())
        await pool.shutdown()
    }

    /// The same generic code runs on threads and in processes and gets the same answers.
    @Test func codeWrittenForJobPoolRunsOnBothPools() async throws {
        func squares(_ inputs: [Int], on pool: some JobPool) async throws -> (Int, [Int], [Int]) {
            let one = try await pool.run(Square.self, 7)
            let ordered = try await pool.map(Square.self, inputs)
            var unordered: [Int: Int] = [:]
            for try await (index, value) in pool.mapUnordered(Square.self, inputs) { unordered[index] = value }
            return (one, ordered, inputs.indices.map { unordered[$0] ?? -1 })
        }
        let inputs = Array(-50..<250)
        let expected = inputs.map { $0 * $0 }
        let threads = ThreadPool(threads: 3)
        let processes = try await makePool()
        for pool in [threads, processes] as [any JobPool] {
            let (one, ordered, unordered) = try await squares(inputs, on: pool)
            #expect(one == 49)
            #expect(ordered == expected)
            #expect(unordered == expected)
        }
        await threads.shutdown()
        await processes.shutdown()
    }

    @Test func reportsMetricsWhenGivenAFactory() async throws {
        let metrics = TestMetrics()
        let pool = try await ProcessPool(workers: 2, jobs: TestJobs.all, executable: workerExecutable, maxJobsPerWorker: 3, metricsFactory: metrics, metricsLabel: "test.pool")
        _ = try await pool.map(Square.self, Array(0..<100), chunkSize: 10)
        await #expect(throws: ProcessPoolError.self) { try await pool.run(ExitNow.self, 3) }
        await pool.shutdown()
        #expect(try metrics.expectCounter("test.pool.jobs").totalValue == 100)
        #expect(try metrics.expectMeter("test.pool.busy").lastValue == 0)
        #expect(try metrics.expectTimer("test.pool.batch_duration").values.count == 10)
        #expect(try metrics.expectCounter("test.pool.worker_exits", [("reason", "crashed")]).totalValue == 1)
        #expect(try metrics.expectCounter("test.pool.worker_exits", [("reason", "recycled")]).totalValue >= 2)
    }

    @Test func aServiceGroupDrainsThePoolOnGracefulShutdown() async throws {
        let pool = try await makePool()
        let threads = ThreadPool(threads: 2)
        let group = ServiceGroup(services: [pool, threads], logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            #expect(try await pool.run(Square.self, 9) == 81)
            #expect(try await threads.run(Square.self, 4) == 16)
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        #expect(pool.workerInfo.allSatisfy { $0.processID == nil })
        await #expect(throws: ProcessPoolError.self) { try await pool.run(Square.self, 1) }
    }

    @Test func mapKeepsInputOrderAcrossChunks() async throws {
        let pool = try await makePool()
        #expect(try await pool.map(Square.self, Array(0..<1000)) == (0..<1000).map { $0 * $0 })
        #expect(try await pool.map(Square.self, 0..<37, chunkSize: 5) == (0..<37).map { $0 * $0 })
        #expect(try await pool.map(Square.self, [Int]()) == [])
        await pool.shutdown()
    }

    @Test func mapUnorderedYieldsEveryIndexOnce() async throws {
        let pool = try await makePool()
        var seen: [Int: Int] = [:]
        for try await (index, output) in pool.mapUnordered(Square.self, Array(0..<500), chunkSize: 7) {
            #expect(seen[index] == nil)
            seen[index] = output
        }
        #expect(seen.count == 500)
        #expect(seen.allSatisfy { $0.value == $0.key * $0.key })
        await #expect(throws: ProcessPoolError.self) {
            for try await _ in pool.mapUnordered(Fail.self, [1, -2, 3], chunkSize: 1) {}
        }
        await pool.shutdown()
    }

    @Test func aThrownErrorComesBackAsJobFailedWithItsIndex() async throws {
        let pool = try await makePool()
        await #expect(throws: ProcessPoolError(.jobFailed(type: "WorkersTestJobs.Failure", message: "failure -3"), jobName: "fail")) {
            try await pool.run(Fail.self, -3)
        }
        do {
            _ = try await pool.map(Fail.self, [1, 2, -7, 4], chunkSize: 2)
            Issue.record("expected a failure")
        } catch let error as ProcessPoolError {
            #expect(error.inputIndex == 2)
        }
        #expect(try await pool.run(Fail.self, 5) == 5)  // the same worker carries on
        await pool.shutdown()
    }

    @Test func aTrapCostsOneJobAndTheWorkerIsReplaced() async throws {
        let pool = try await makePool(workers: 1)
        let before = try await pool.run(Nap.self, 0)
        await #expect(throws: ProcessPoolError(.workerCrashed(signal: SIGILL, exitCode: nil), jobName: "trap")) {
            try await pool.run(Trap.self, true)
        }
        let after = try await pool.run(Nap.self, 0)
        #expect(after != before)
        #expect(!isAlive(before))
        #expect(pool.workerInfo[0].restarts == 1)
        await pool.shutdown()
    }

    @Test func aWorkerThatExitsFailsOnlyItsJob() async throws {
        let pool = try await makePool(workers: 1)
        await #expect(throws: ProcessPoolError(.workerCrashed(signal: nil, exitCode: 3), jobName: "exit")) {
            try await pool.run(ExitNow.self, 3)
        }
        #expect(try await pool.run(Square.self, 3) == 9)
        await pool.shutdown()
    }

    @Test func aKilledWorkerCostsOneJob() async throws {
        let pool = try await makePool(workers: 1)
        let pid = try #require(pool.workerInfo[0].processID)
        let napping = Task { try await pool.run(Nap.self, 10_000) }
        await untilBusy(pool)
        kill(pid, SIGKILL)
        await #expect(throws: ProcessPoolError(.workerCrashed(signal: SIGKILL, exitCode: nil), jobName: "nap")) { try await napping.value }
        #expect(try await pool.run(Square.self, 4) == 16)
        await pool.shutdown()
    }

    @Test func aJobOverItsTimeoutIsKilled() async throws {
        let pool = try await makePool(workers: 1)
        let pid = try #require(pool.workerInfo[0].processID)
        let start = ContinuousClock.now
        // A nap of ten minutes: `.timedOut` at all means the worker was killed mid-nap (had the nap
        // ended first, its answer would have resolved the job). The bound below is the nap's own
        // length, not a speed: a loaded CI machine once took 10.6 s to report a 100 ms time-out.
        await #expect(throws: ProcessPoolError(.timedOut, jobName: "nap")) {
            try await pool.run(Nap.self, 600_000, timeout: .milliseconds(100))
        }
        #expect(start.duration(to: .now) < .seconds(600))
        #expect(!isAlive(pid))
        #expect(try await pool.run(Square.self, 5) == 25)
        await pool.shutdown()
    }

    @Test func garbageOnTheWireIsAProtocolViolation() async throws {
        let pool = try await makePool(workers: 1)
        do {
            _ = try await pool.run(Garbage.self, 0)
            Issue.record("expected a protocol violation")
        } catch let error as ProcessPoolError {
            guard case .protocolViolation = error.code else { Issue.record("got \(error)"); return }
        }
        #expect(try await pool.run(Square.self, 6) == 36)
        await pool.shutdown()
    }

    @Test func cancellingARunningJobKillsItsWorker() async throws {
        let pool = try await makePool(workers: 1)
        let pid = try #require(pool.workerInfo[0].processID)
        let task = Task { try await pool.run(Nap.self, 20_000) }
        await untilBusy(pool)
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(!isAlive(pid))
        #expect(try await pool.run(Square.self, 7) == 49)
        await pool.shutdown()
    }

    @Test func aRetryPolicyRunsACrashedJobAgainOnAFreshWorker() async throws {
        let pool = try await makePool(workers: 1, retry: RetryPolicy(maxAttempts: 2))
        let path = temporaryPath()
        defer { unlink(path) }
        #expect(try await pool.run(CrashOnce.self, path) == 1)
        #expect(pool.workerInfo[0].restarts == 1)
        await pool.shutdown()
    }

    @Test func withoutRetriesTheCrashReachesTheCaller() async throws {
        let pool = try await makePool(workers: 1)
        let path = temporaryPath()
        defer { unlink(path) }
        await #expect(throws: ProcessPoolError(.workerCrashed(signal: nil, exitCode: 9), jobName: "crash-once")) {
            try await pool.run(CrashOnce.self, path)
        }
        await pool.shutdown()
    }

    @Test func retriesAreBoundedAndThrownErrorsAreNotRetried() async throws {
        let pool = try await makePool(workers: 1, retry: RetryPolicy(maxAttempts: 3))
        await #expect(throws: ProcessPoolError(.workerCrashed(signal: nil, exitCode: 4), jobName: "exit")) {
            try await pool.run(ExitNow.self, 4)
        }
        // Three attempts, each on a fresh worker but the first; the third crash's replacement
        // starts at once and may not have shaken hands yet.
        #expect((2...3).contains(pool.workerInfo[0].restarts))
        await #expect(throws: ProcessPoolError.self) { try await pool.run(Fail.self, -1) }
        #expect(pool.workerInfo[0].restarts == 3)  // the replacement for the third crash; none for the throw
        await pool.shutdown()
    }

    @Test func aWorkerOverItsMemoryLimitIsKilled() async throws {
        let pool = try await ProcessPool(workers: 1, jobs: TestJobs.all, executable: workerExecutable, memoryLimit: 256 << 20)
        #expect(try await pool.run(Hog.self, 16) == 16)  // well under the limit
        await #expect(throws: ProcessPoolError(.resourceLimit, jobName: "hog")) { try await pool.run(Hog.self, 4096) }
        #expect(try await pool.run(Square.self, 8) == 64)
        await pool.shutdown()
    }

    @Test func maxJobsPerWorkerRecyclesWorkers() async throws {
        let pool = try await makePool(workers: 1, maxJobsPerWorker: 2)
        var pids: Set<Int32> = []
        for _ in 0..<6 { pids.insert(try await pool.run(Nap.self, 0)) }
        #expect(pids.count == 3)
        await pool.shutdown()
    }

    @Test func cpuBoundJobsRunInParallel() async throws {
        let pool = try await makePool(workers: 2)
        let pids = try await pool.map(Nap.self, [300, 300], chunkSize: 1)
        #expect(Set(pids).count == 2)  // both workers held one each at once
        await pool.shutdown()
    }

    @Test func shutdownReapsEveryWorkerAndRefusesNewJobs() async throws {
        let pool = try await makePool(workers: 2)
        let pids = pool.workerInfo.compactMap(\.processID)
        #expect(pids.count == 2)
        await pool.shutdown()
        for pid in pids { #expect(!isAlive(pid)) }
        await #expect(throws: ProcessPoolError(.shutDown, jobName: "square")) { try await pool.run(Square.self, 1) }
    }

    @Test func cancelPendingFailsQueuedJobs() async throws {
        let pool = try await makePool(workers: 1)
        // The nap only has to outlast the square's submission (cancelPending kills it): under
        // ThreadSanitizer, with the suite beside it, a 5 s nap once ended first, the square then
        // ran at once, and an unbounded wait for it to be queued hung the whole run.
        let running = Task { try await pool.run(Nap.self, 60_000) }
        await untilBusy(pool)
        try #require(pool.workerInfo[0].isBusy, "the nap did not start within 30 s")
        let queued = Task { try await pool.run(Square.self, 2) }
        let deadline = ContinuousClock.now.advanced(by: .seconds(30))
        while pool.queuedBatches == 0, ContinuousClock.now < deadline { await Task.yield() }
        try #require(pool.queuedBatches == 1, "the square was not queued behind the nap")
        await pool.shutdown(.cancelPending)
        await #expect(throws: CancellationError.self) { try await queued.value }
        await #expect(throws: CancellationError.self) { try await running.value }
    }
}
