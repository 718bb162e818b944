import Foundation
import Testing
@testable import WorkersCore

@Suite struct BarrierTests {
    @Test(arguments: [1, 2, 5])
    func threadsGetDistinctIndicesAndTheActionRunsOnce(parties: Int) throws {
        let actions = Locked(0)
        let barrier = Barrier(parties: parties) { actions.withLock { $0 += 1 } }
        let indices = Locked<[Int]>([])
        let done = CountDownLatch(count: parties)
        for _ in 0..<parties {
            Thread.detachNewThread {
                if let index = try? barrier.wait(timeout: .seconds(30)) { indices.withLock { $0.append(index) } }
                done.countDown()
            }
        }
        #expect(done.wait(timeout: .seconds(30)))
        #expect(indices.withLock { $0.sorted() } == Array(0..<parties))
        #expect(actions.current == 1)
        #expect(!barrier.isBroken)
    }

    @Test func isReusableForManyRounds() {
        let barrier = Barrier(parties: 3)
        let done = CountDownLatch(count: 3)
        let failures = Locked(0)
        for _ in 0..<3 {
            Thread.detachNewThread {
                for _ in 0..<200 {
                    do { try barrier.wait(timeout: .seconds(30)) } catch { failures.withLock { $0 += 1 } }
                }
                done.countDown()
            }
        }
        #expect(done.wait(timeout: .seconds(60)))
        #expect(failures.current == 0)
    }

    @Test func aTimeoutBreaksTheBarrierForEveryone() {
        let barrier = Barrier(parties: 3)
        #expect(throws: BrokenBarrierError(.timedOut)) { try barrier.wait(timeout: .milliseconds(10)) }
        #expect(barrier.isBroken)
        #expect(throws: BrokenBarrierError(.broken)) { try barrier.wait(timeout: .seconds(1)) }
        barrier.reset()
        #expect(!barrier.isBroken)
    }

    @Test func abortWakesAWaitingThread() {
        let barrier = Barrier(parties: 2)
        let result = Locked<(any Error)?>(nil)
        let done = CountDownLatch(count: 1)
        Thread.detachNewThread {
            do { try barrier.wait(timeout: .seconds(30)) } catch { result.withLock { $0 = error } }
            done.countDown()
        }
        while barrier.waitingCount == 0 { Thread.sleep(forTimeInterval: 0.001) }
        barrier.abort()
        #expect(done.wait(timeout: .seconds(30)))
        #expect(result.withLock { $0 as? BrokenBarrierError } == BrokenBarrierError(.broken))
    }

    @Test func aThrowingActionBreaksTheBarrierAndReachesTheLastParty() {
        struct Boom: Error {}
        let barrier = Barrier(parties: 1) { throw Boom() }
        #expect(throws: Boom.self) { try barrier.wait() }
        #expect(barrier.isBroken)
    }

    @Test func asyncPartiesMeet() async throws {
        let barrier = Barrier(parties: 4)
        let indices = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<4 { group.addTask { try await barrier.wait() } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(indices.sorted() == [0, 1, 2, 3])
    }

    @Test func threadsAndTasksMeetAtOneBarrier() async throws {
        let barrier = Barrier(parties: 2)
        let threadIndex = Locked<Int?>(nil)
        let threadDone = CountDownLatch(count: 1)
        Thread.detachNewThread {
            threadIndex.withLock { $0 = try? barrier.wait(timeout: .seconds(30)) }
            threadDone.countDown()
        }
        let taskIndex = try await barrier.wait()
        try await threadDone.wait()
        #expect(Set([taskIndex, threadIndex.current]) == [0, 1])
    }

    @Test func cancellingAnAsyncPartyBreaksTheBarrier() async throws {
        let barrier = Barrier(parties: 2)
        let task = Task { try await barrier.wait() }
        while barrier.waitingCount == 0 { await Task.yield() }
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(barrier.isBroken)
        await #expect(throws: BrokenBarrierError(.broken)) { try await barrier.wait() }
    }
}
