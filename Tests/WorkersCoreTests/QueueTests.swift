import Foundation
import Testing
@testable import WorkersCore

@Suite struct BlockingQueueTests {
    @Test func isFIFO() throws {
        let queue = BlockingQueue<Int>(capacity: 10)
        for value in 0..<10 { try queue.put(value) }
        #expect(queue.isFull)
        #expect(try (0..<10).map { _ in try queue.get() } == Array(0..<10))
        #expect(queue.isEmpty)
    }

    @Test func putTimesOutOnAFullQueueAndGetOnAnEmptyOne() throws {
        let queue = BlockingQueue<Int>(capacity: 1)
        try queue.put(1)
        #expect(throws: QueueError(.full)) { try queue.put(2, timeout: .milliseconds(10)) }
        #expect(throws: QueueError(.full)) { try queue.put(2, timeout: .zero) }
        #expect(try queue.get() == 1)
        #expect(throws: QueueError(.empty)) { try queue.get(timeout: .milliseconds(10)) }
    }

    @Test func producersAndConsumersOnThreadsLoseNothing() throws {
        let queue = BlockingQueue<Int>(capacity: 4)
        let total = Locked(0)
        let consumers = CountDownLatch(count: 3)
        for _ in 0..<3 {
            Thread.detachNewThread {
                while let value = try? queue.get() {
                    total.withLock { $0 += value }
                    queue.taskDone()
                }
                consumers.countDown()
            }
        }
        let producers = CountDownLatch(count: 3)
        for producer in 0..<3 {
            Thread.detachNewThread {
                for value in 1...1000 { try? queue.put(value + producer * 1000) }
                producers.countDown()
            }
        }
        #expect(producers.wait(timeout: .seconds(60)))
        queue.join()
        #expect(total.current == (1...3000).reduce(0, +))
        queue.close()
        #expect(consumers.wait(timeout: .seconds(60)))
    }

    @Test func closeWakesBlockedGettersAndPutters() {
        let empty = BlockingQueue<Int>(capacity: 1)
        let full = BlockingQueue<Int>(capacity: 1)
        try? full.put(0)
        let errors = Locked<[QueueError]>([])
        let done = CountDownLatch(count: 2)
        Thread.detachNewThread {
            do { _ = try empty.get() } catch { errors.withLock { $0.append(error as! QueueError) } }
            done.countDown()
        }
        Thread.detachNewThread {
            do { try full.put(1) } catch { errors.withLock { $0.append(error as! QueueError) } }
            done.countDown()
        }
        empty.close()
        full.close()
        #expect(done.wait(timeout: .seconds(30)))
        #expect(errors.withLock { $0 } == [QueueError(.closed), QueueError(.closed)])
    }

    @Test func closeLetsGettersDrainUnlessImmediate() throws {
        let queue = BlockingQueue<Int>(capacity: 5)
        try queue.put(1)
        try queue.put(2)
        queue.close()
        #expect(throws: QueueError(.closed)) { try queue.put(3) }
        #expect(try queue.get() == 1)
        queue.close(immediate: true)
        #expect(throws: QueueError(.closed)) { try queue.get() }
        queue.taskDone()
        queue.join()  // the discarded item counts as done
    }
}

@Suite struct AsyncQueueTests {
    @Test func sendersSuspendWhileFull() async throws {
        let queue = AsyncQueue<Int>(capacity: 2)
        try await queue.send(1)
        try await queue.send(2)
        #expect(throws: QueueError(.full)) { try queue.trySend(3) }
        let sent = Locked(false)
        let sender = Task {
            try await queue.send(3)
            sent.withLock { $0 = true }
        }
        #expect(try await queue.next() == 1)
        try await sender.value
        #expect(sent.current)
        #expect(try await queue.next() == 2)
        #expect(try await queue.next() == 3)
    }

    @Test func manyProducersAndConsumersDeliverEachItemOnce() async throws {
        let queue = AsyncQueue<Int>(capacity: 8)
        let received = try await withThrowingTaskGroup(of: [Int].self) { group in
            for consumer in 0..<4 {
                _ = consumer
                group.addTask {
                    var got: [Int] = []
                    for try await value in queue { got.append(value) }
                    return got
                }
            }
            try await withThrowingTaskGroup(of: Void.self) { producers in
                for producer in 0..<4 {
                    producers.addTask { for value in 0..<500 { try await queue.send(producer * 500 + value) } }
                }
                try await producers.waitForAll()
            }
            queue.finish()
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(received.sorted() == Array(0..<2000))
    }

    @Test func finishFailsSendersAndEndsReceiversAfterTheBuffer() async throws {
        let queue = AsyncQueue<Int>(capacity: 1)
        try await queue.send(1)
        let blocked = Task { try await queue.send(2) }
        while true {
            // The blocked sender is queued when a trySend still fails and the buffer holds one.
            if queue.count == 1 { break }
            await Task.yield()
        }
        queue.finish()
        await #expect(throws: QueueError(.closed)) { try await blocked.value }
        #expect(try await queue.next() == 1)
        #expect(try await queue.next() == nil)
        await #expect(throws: QueueError(.closed)) { try await queue.send(3) }
    }

    @Test func aCancelledReceiverThrows() async {
        let queue = AsyncQueue<Int>(capacity: 1)
        let task = Task { try await queue.next() }
        task.cancel()
        await #expect(throws: CancellationError.self) { _ = try await task.value }
    }
}

/// Bad sizes and time-outs are precondition failures whose message names the parameter.
@Suite struct PrimitiveBadInputTests {
    @Test func aZeroCapacityQueueNamesTheParameter() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = BlockingQueue<Int>(capacity: 0)
        }
        let stderr = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(stderr.contains("capacity must be at least 1"))
    }

    @Test func aNegativeTimeoutNamesTheParameter() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Event().wait(timeout: .milliseconds(-1))
        }
        let stderr = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(stderr.contains("timeout must not be negative"))
    }

    @Test func aBarrierOfNoPartiesNamesTheParameter() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Barrier(parties: 0)
        }
        let stderr = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(stderr.contains("parties must be at least 1"))
    }
}
