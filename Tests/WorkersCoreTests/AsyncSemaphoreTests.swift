import Testing
@testable import WorkersCore

@Suite struct AsyncSemaphoreTests {
    @Test func permitsAreTakenAndReturned() async throws {
        let semaphore = AsyncSemaphore(value: 2)
        try await semaphore.wait()
        #expect(semaphore.tryWait())
        #expect(!semaphore.tryWait())
        semaphore.signal()
        #expect(semaphore.availablePermits == 1)
    }

    @Test func waitersAreServedInArrivalOrder() async throws {
        let semaphore = AsyncSemaphore(value: 0)
        let order = Locked<[Int]>([])
        var tasks: [Task<Void, any Error>] = []
        for index in 0..<5 {
            tasks.append(Task {
                try await semaphore.wait()
                order.withLock { $0.append(index) }
                semaphore.signal()
            })
            while semaphore.waitingCount < index + 1 { await Task.yield() }
        }
        semaphore.signal()
        for task in tasks { try await task.value }
        #expect(order.withLock { $0 } == [0, 1, 2, 3, 4])
    }

    @Test func aCancelledWaiterLeavesAtOnceAndTakesNoPermit() async throws {
        let semaphore = AsyncSemaphore(value: 0)
        let task = Task { try await semaphore.wait() }
        while semaphore.waitingCount == 0 { await Task.yield() }
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(semaphore.waitingCount == 0)
        semaphore.signal()
        #expect(semaphore.availablePermits == 1)
    }

    @Test func withPermitBoundsConcurrency() async throws {
        let semaphore = AsyncSemaphore(value: 3)
        let current = Locked(0)
        let peak = Locked(0)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<50 {
                group.addTask {
                    try await semaphore.withPermit {
                        let now = current.withLock { $0 += 1; return $0 }
                        peak.withLock { $0 = max($0, now) }
                        await Task.yield()
                        current.withLock { $0 -= 1 }
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(peak.current <= 3)
        #expect(semaphore.availablePermits == 3)
    }
}
