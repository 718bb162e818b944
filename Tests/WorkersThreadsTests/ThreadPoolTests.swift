import Foundation
import Logging
import InMemoryLogging
import MetricsTestKit
import Synchronization
import Testing
import WorkersCore
@testable import WorkersThreads

struct Square: Job {
    static let name = "square"
    func run(_ input: Int) async throws -> Int {
        if input < 0 { throw Boom(value: input) }
        return input * input
    }
}

struct WhereAmI: Job {
    static let name = "where-am-i"
    func run(_ input: ThreadPoolBox) async throws -> Bool { input.pool.isOnPoolThread }
}

struct ThreadPoolBox: Codable, Sendable {
    nonisolated(unsafe) static var current: ThreadPool?  // test-only handle; set before use, read after
    var pool: ThreadPool { Self.current! }
    init() {}
}

@Suite(.timeLimit(.minutes(2))) struct ThreadPoolRunTests {
    @Test func runReturnsTheBodysValueFromAPoolThread() async throws {
        let pool = ThreadPool(threads: 2)
        let (value, onPool) = try await pool.run { (42, pool.isOnPoolThread) }
        #expect(value == 42)
        #expect(onPool)
        #expect(!pool.isOnPoolThread)
        await pool.shutdown()
    }

    @Test func aThrowingBodyReachesItsCallerAndThePoolCarriesOn() async throws {
        let pool = ThreadPool(threads: 1)
        await #expect(throws: Boom(value: 7)) { try await pool.run { throw Boom(value: 7) } }
        #expect(try await pool.run { 1 } == 1)
        await pool.shutdown()
    }

    @Test func taskLocalsAreVisibleInsideTheBody() async throws {
        let pool = ThreadPool(threads: 2)
        let seen = try await Probe.$requestID.withValue("req-42") {
            try await pool.run { Probe.requestID }
        }
        #expect(seen == "req-42")
        await pool.shutdown()
    }

    @Test func cancellationIsVisibleInsideARunningBody() async throws {
        let pool = ThreadPool(threads: 1)
        let started = CountDownLatch(count: 1)
        let task = Task {
            try await pool.run { () -> Bool in
                started.countDown()
                while !Task.isCancelled { usleep(100) }
                return Task.isCancelled
            }
        }
        try await started.wait()
        task.cancel()
        #expect(try await task.value)
        await pool.shutdown()
    }

    @Test func aCallerCancelledWhileQueuedFailsAtOnceAndItsJobNeverRuns() async throws {
        let pool = ThreadPool(threads: 1)
        let blocker = try await Occupant(of: pool)
        let ran = Counter()
        let queued = Task { try await pool.run { ran.increment() } }
        #expect(await eventually { pool.statistics.queuedJobs == 1 })
        queued.cancel()
        await #expect(throws: CancellationError.self) { try await queued.value }
        #expect(pool.statistics.runningJobs == 1)  // the blocker still holds the only thread
        try await blocker.release()
        #expect(ran.count == 0)
        await pool.shutdown()
    }

    @Test func anAlreadyCancelledCallerNeverStartsItsJob() async {
        let pool = ThreadPool(threads: 1)
        let ran = Counter()
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await pool.run { ran.increment() }
        }
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(ran.count == 0)
        await pool.shutdown()
    }

    @Test func blockingJobsRunConcurrentlyUpToTheThreadCount() async throws {
        let pool = ThreadPool(threads: 8)
        let barrier = Barrier(parties: 8)
        // Eight bodies that each wait for the other seven can finish only if all eight run at once.
        try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<8 { group.addTask { try await pool.run { try barrier.wait(timeout: .seconds(30)) } } }
            try await group.waitForAll()
        }
        await pool.shutdown()
    }

    @Test func rejectPolicyFailsWhenTheQueueIsFull() async throws {
        let pool = ThreadPool(threads: 1, queueCapacity: 1, whenQueueFull: .reject)
        let blocker = try await Occupant(of: pool)
        let waiting = Task { try await pool.run { 2 } }
        #expect(await eventually { pool.statistics.queuedJobs == 1 })
        await #expect(throws: ThreadPoolError(.queueFull)) { try await pool.run { 3 } }
        try await blocker.release()
        #expect(try await waiting.value == 2)
        await pool.shutdown()
    }

    @Test func runInCallerPolicyRunsTheJobOffThePool() async throws {
        let pool = ThreadPool(threads: 1, queueCapacity: 0, whenQueueFull: .runInCaller)
        let blocker = try await Occupant(of: pool)
        let onPool = try await pool.run { pool.isOnPoolThread }
        #expect(!onPool)
        try await blocker.release()
        await pool.shutdown()
    }

    @Test func tasksPreferringThePoolRunOnIt() async throws {
        let pool = ThreadPool(threads: 2)
        let inScope = await withTaskExecutorPreference(pool) { await Self.onPool(pool) }
        #expect(inScope)
        let inTask = await Task(executorPreference: pool) { pool.isOnPoolThread }.value
        #expect(inTask)
        let inChildren = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<4 { group.addTask(executorPreference: pool) { pool.isOnPoolThread } }
            return await group.reduce(true) { $0 && $1 }
        }
        #expect(inChildren)
        await pool.shutdown()
    }

    @concurrent static func onPool(_ pool: ThreadPool) async -> Bool { pool.isOnPoolThread }

    @Test func theCallerContinuesOffThePoolAfterRun() async throws {
        let pool = ThreadPool(threads: 1)
        let placements = try await Task.detached { () -> [Bool] in
            var placements: [Bool] = []
            for _ in 0..<5 {
                _ = try await pool.run { 1 }
                placements.append(pool.isOnPoolThread)
            }
            return placements
        }.value
        #expect(placements == [false, false, false, false, false])  // the pool's threads stay free
        await pool.shutdown()
    }

    @Test func jobsRunOnThePool() async throws {
        let pool = ThreadPool(threads: 2)
        #expect(try await pool.run(Square.self, 9) == 81)
        await #expect(throws: Boom(value: -1)) { try await pool.run(Square.self, -1) }
        ThreadPoolBox.current = pool
        #expect(try await pool.run(WhereAmI.self, ThreadPoolBox()))
        await pool.shutdown()
    }

    @Test func threadsAreNamedWithThePrefix() async throws {
        let prefix = uniquePrefix()
        var configuration = ThreadPool.Configuration()
        configuration.maxThreads = 2
        configuration.threadNamePrefix = prefix
        let pool = ThreadPool(configuration: configuration)
        let name = try await pool.run { () -> String in
            let comm = try String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)
            return comm.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        #expect(name == "\(prefix)-1")
        await pool.shutdown()
        #expect(await eventually { threadNames(prefix: prefix).isEmpty })  // see shutdownStopsEveryThread
    }
}

@Suite(.timeLimit(.minutes(2))) struct ThreadPoolMapTests {
    @Test func mapKeepsInputOrder() async throws {
        let pool = ThreadPool(threads: 4)
        let results = try await pool.map(0..<1000) { value -> Int in
            if value % 7 == 0 { usleep(50) }
            return value * 2
        }
        #expect(results == (0..<1000).map { $0 * 2 })
        await pool.shutdown()
    }

    @Test func mapRunsAtMostMaxInFlightAtOnce() async throws {
        let pool = ThreadPool(threads: 8)
        let concurrency = Concurrency()
        _ = try await pool.map(0..<200, maxInFlight: 3) { value -> Int in
            concurrency.enter()
            usleep(200)
            concurrency.leave()
            return value
        }
        #expect(concurrency.peak <= 3)
        #expect(concurrency.peak >= 1)
        await pool.shutdown()
    }

    @Test func mapReadsItsInputLazily() async throws {
        let pool = ThreadPool(threads: 2)
        let read = Counter()
        await #expect(throws: Boom(value: 5)) {
            let inputs = (0..<100).lazy.map { value -> Int in
                read.increment()
                return value
            }
            return try await pool.map(inputs, maxInFlight: 1) { value -> Int in
                if value == 5 { throw Boom(value: 5) }
                return value
            }
        }
        #expect(read.count == 6)  // nothing after the failing input was read
        await pool.shutdown()
    }

    @Test func mapThrowsTheLowestIndexedError() async throws {
        let pool = ThreadPool(threads: 4)
        await #expect(throws: Boom(value: 10)) {
            try await pool.map(0..<100) { value -> Int in
                if value >= 10 { throw Boom(value: value) }
                return value
            }
        }
        #expect(try await pool.run { 1 } == 1)  // the pool carries on
        await pool.shutdown()
    }

    @Test func mapOfJobs() async throws {
        let pool = ThreadPool(threads: 2)
        #expect(try await pool.map(Square.self, [1, 2, 3]) == [1, 4, 9])
        await pool.shutdown()
    }

    @Test func mapUnorderedYieldsEveryIndexOnce() async throws {
        let pool = ThreadPool(threads: 4)
        var seen: [Int: Int] = [:]
        for try await (index, value) in pool.mapUnordered(Array(0..<500), { $0 + 1 }) {
            #expect(seen[index] == nil)
            seen[index] = value
        }
        #expect(seen.count == 500)
        #expect(seen.allSatisfy { $0.value == $0.key + 1 })
        var jobs: [Int] = []
        for try await (_, value) in pool.mapUnordered(Square.self, [2, 3]) { jobs.append(value) }
        #expect(jobs.sorted() == [4, 9])
        await pool.shutdown()
    }

    @Test func mapUnorderedHoldsProducersBackForASlowConsumer() async throws {
        let pool = ThreadPool(threads: 4)
        let started = Counter()
        do {
            var iterator = pool.mapUnordered(Array(0..<1000), maxInFlight: 2) { value -> Int in
                started.increment()
                return value
            }.makeAsyncIterator()
            _ = try await iterator.next()
            #expect(await eventually { started.count >= 2 })
            // With 2 in flight, at most: 1 consumed + 2 buffered + 2 running ahead.
            #expect(started.count <= 5)
        }
        // Dropping the iterator stopped the producers, so shutdown does not wait for them.
        await pool.shutdown()
        #expect(started.count <= 5)
    }

    @Test func mapUnorderedSurfacesABodysError() async throws {
        let pool = ThreadPool(threads: 2)
        await #expect(throws: Boom(value: 3)) {
            for try await _ in pool.mapUnordered(Array(0..<100), maxInFlight: 1, { value -> Int in
                if value == 3 { throw Boom(value: 3) }
                return value
            }) {}
        }
        await pool.shutdown()
    }

    @Test func cancellingAMapStopsIt() async throws {
        let pool = ThreadPool(threads: 2)
        let started = CountDownLatch(count: 1)
        let ran = Counter()
        let task = Task {
            try await pool.map(0..<10_000, maxInFlight: 2) { value -> Int in
                started.countDown()
                ran.increment()
                usleep(100)
                return value
            }
        }
        try await started.wait()
        task.cancel()
        await #expect(throws: CancellationError.self) { _ = try await task.value }
        #expect(ran.count < 10_000)
        await pool.shutdown()
    }
}

@Suite(.timeLimit(.minutes(2))) struct ThreadPoolLifecycleTests {
    @Test func drainRunsQueuedJobsAndLaterSubmissionsFail() async throws {
        let pool = ThreadPool(threads: 1)
        let blocker = try await Occupant(of: pool)
        let queued = (0..<3).map { value in Task { try await pool.run { value } } }
        #expect(await eventually { pool.statistics.queuedJobs == 3 })
        let shutdown = Task { await pool.shutdown(.drain) }
        #expect(await eventually { !pool.statistics.isAcceptingJobs })
        #expect(pool.statistics.queuedJobs == 3)  // a drain keeps the queue
        await #expect(throws: ThreadPoolError(.shutDown)) { try await pool.run { 9 } }
        try await blocker.release()
        for (value, task) in queued.enumerated() { #expect(try await task.value == value) }
        await shutdown.value
    }

    @Test func cancelPendingFailsQueuedJobsAndWaitsForRunningOnes() async throws {
        let pool = ThreadPool(threads: 1)
        let finished = Counter()
        let blocker = try await Occupant(of: pool, finished: finished)
        let queued = (0..<3).map { value in Task { try await pool.run { value } } }
        #expect(await eventually { pool.statistics.queuedJobs == 3 })
        let shutdown = Task { await pool.shutdown(.cancelPending) }
        for task in queued { await #expect(throws: CancellationError.self) { _ = try await task.value } }
        try await blocker.release()
        await shutdown.value
        #expect(finished.count == 1)
    }

    @Test func shutdownTwiceAndOfAnUnusedPoolReturn() async {
        let pool = ThreadPool(threads: 3)
        await pool.shutdown()
        await pool.shutdown()
        await #expect(throws: ThreadPoolError(.shutDown)) { try await pool.run { 1 } }
    }

    @Test func shutdownStopsEveryThread() async throws {
        let prefix = uniquePrefix()
        var configuration = ThreadPool.Configuration()
        configuration.minThreads = 4
        configuration.maxThreads = 4
        configuration.threadNamePrefix = prefix
        let pool = ThreadPool(configuration: configuration)
        let barrier = Barrier(parties: 4)
        _ = try await pool.map(0..<4) { _ in try barrier.wait(timeout: .seconds(30)) }
        #expect(threadNames(prefix: prefix).count == 4)
        await pool.shutdown()
        // shutdown() has joined them; the kernel lists a joined thread in /proc/self/task for a
        // moment more (pthread_join wakes at the thread's exit, before the task is released).
        #expect(await eventually { threadNames(prefix: prefix).isEmpty })
    }

    @Test func aDroppedPoolLeaksNoThreads() async throws {
        let prefix = uniquePrefix()
        do {
            var configuration = ThreadPool.Configuration()
            configuration.minThreads = 3
            configuration.maxThreads = 3
            configuration.threadNamePrefix = prefix
            let pool = ThreadPool(configuration: configuration)
            let barrier = Barrier(parties: 3)
            _ = try await pool.map(0..<3) { _ in try barrier.wait(timeout: .seconds(30)) }
            #expect(threadNames(prefix: prefix).count == 3)
        }
        #expect(await eventually { threadNames(prefix: prefix).isEmpty })
    }

    @Test func idleThreadsAboveTheMinimumRetire() async throws {
        let pool = ThreadPool(minThreads: 1, maxThreads: 4, keepAlive: .milliseconds(20))
        let barrier = Barrier(parties: 4)
        // Four parties meet only if four threads ran at once.
        _ = try await pool.map(0..<4) { _ in try barrier.wait(timeout: .seconds(30)) }
        #expect(await eventually { pool.statistics.threads == 1 })
        #expect(try await pool.run { 5 } == 5)
        await pool.shutdown()
    }

    @Test func aTaskPreferringAShutDownPoolStillRuns() async throws {
        let pool = ThreadPool(threads: 1)
        await pool.shutdown()
        let value = await Task(executorPreference: pool) { 11 }.value
        #expect(value == 11)
    }
}

@Suite(.timeLimit(.minutes(2))) struct ThreadPoolObservabilityTests {
    @Test func metricsCountJobsAndThreads() async throws {
        let metrics = TestMetrics()
        let pool = ThreadPool(threads: 2, metricsFactory: metrics)
        _ = try await pool.map(0..<10) { $0 }
        #expect(try await pool.run { 1 } == 1)
        await pool.shutdown()
        let completed = try metrics.expectCounter("workers.threadpool.completed")
        #expect(completed.totalValue >= 3)  // map loops and the run each count as jobs
        let threads = try metrics.expectGauge("workers.threadpool.threads")
        #expect(threads.lastValue == 0)
        let busy = try metrics.expectMeter("workers.threadpool.busy")
        #expect(busy.lastValue == 0)
        #expect(pool.statistics.completedJobs == completed.totalValue)
    }

    @Test func theInjectedLoggerHearsShutdown() async {
        let (handler, logger) = makeLogger()
        let pool = ThreadPool(threads: 1, logger: logger)
        await pool.shutdown()
        #expect(handler.entries.contains { $0.message.description.contains("shutting down") })
    }

    private func makeLogger() -> (InMemoryLogHandler, Logger) {
        let handler = InMemoryLogHandler()
        var logger = Logger(label: "test", factory: { _ in handler })
        logger.logLevel = .trace
        return (handler, logger)
    }
}

@Suite struct ThreadPoolTaskContextTests {
    @Test func loggerCurrentIsVisibleInsideTheBody() async throws {
        let pool = ThreadPool(threads: 1)
        let label = try await withLogger(Logger(label: "request-7", factory: { _ in SwiftLogNoOpLogHandler() })) { _ in
            try await pool.run { Logger.current.label }
        }
        #expect(label == "request-7")
        await pool.shutdown()
    }
}

/// Bad sizes are precondition failures whose message names the parameter.
@Suite struct ThreadPoolBadInputTests {
    @Test func zeroThreadsNamesTheParameter() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = ThreadPool(threads: 0)
        }
        let stderr = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(stderr.contains("threads must be at least 1"))
    }

    @Test func minAboveMaxNamesBothParameters() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = ThreadPool(minThreads: 5, maxThreads: 2)
        }
        let stderr = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(stderr.contains("minThreads (5) must not exceed maxThreads (2)"))
    }

    @Test func zeroMaxInFlightNamesTheParameter() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let pool = ThreadPool(threads: 1)
            _ = try? await pool.map([1], maxInFlight: 0) { $0 }
        }
        let stderr = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(stderr.contains("maxInFlight must be at least 1"))
    }
}
