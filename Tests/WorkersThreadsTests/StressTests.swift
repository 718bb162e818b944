import Foundation
import Testing
import WorkersCore
@testable import WorkersThreads

/// Heavier tests that CI enables with `WORKERS_STRESS=1`.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["WORKERS_STRESS"] == "1"), .timeLimit(.minutes(5)))
struct ThreadPoolStressTests {
    /// 10,000 submissions from many tasks, a random tenth of them cancelled, and a shutdown racing
    /// the submissions: every submission ends exactly once, in one of the three allowed ways.
    @Test(arguments: [ThreadPool.ShutdownMode.drain, .cancelPending])
    func tenThousandSubmissionsWithCancellationsAndARacingShutdown(mode: ThreadPool.ShutdownMode) async throws {
        let pool = ThreadPool(minThreads: 0, maxThreads: 16, keepAlive: .milliseconds(5))
        let submissions = 10_000
        let ran = Counter()
        let halfway = CountDownLatch(count: submissions / 2)
        let outcomes = try await withThrowingTaskGroup(of: [Outcome].self) { group in
            for producer in 0..<50 {
                group.addTask {
                    var outcomes: [Outcome] = []
                    for index in 0..<(submissions / 50) {
                        let value = producer * 1000 + index
                        let job = Task {
                            try await pool.run { () -> Int in
                                ran.increment()
                                if value % 3 == 0 { usleep(20) }
                                return value
                            }
                        }
                        if Int.random(in: 0..<10) == 0 { job.cancel() }
                        halfway.countDown()
                        switch await job.result {
                        case .success(let returned):
                            outcomes.append(returned == value ? .returned : .wrongValue)
                        case .failure(let error as ThreadPoolError) where error.code == .shutDown:
                            outcomes.append(.shutDown)
                        case .failure(is CancellationError):
                            outcomes.append(.cancelled)
                        case .failure:
                            outcomes.append(.wrongValue)
                        }
                    }
                    return outcomes
                }
            }
            group.addTask {
                try await halfway.wait()
                await pool.shutdown(mode)
                return []
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(outcomes.count == submissions)
        #expect(!outcomes.contains(.wrongValue))
        #expect(outcomes.filter { $0 == .returned }.count == ran.count)
        #expect(outcomes.contains(.shutDown))
        #expect(pool.statistics.threads == 0)
        #expect(pool.statistics.runningJobs == 0)
    }

    enum Outcome: Equatable { case returned, cancelled, shutDown, wrongValue }

    @Test func manyConcurrentMapsShareOnePool() async throws {
        let pool = ThreadPool(threads: 8)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for offset in 0..<20 {
                group.addTask {
                    let results = try await pool.map(0..<2000, maxInFlight: 4) { $0 + offset }
                    #expect(results == (0..<2000).map { $0 + offset })
                }
            }
            try await group.waitForAll()
        }
        await pool.shutdown()
    }
}
