import Foundation
import Testing
@testable import WorkersCore

@Suite struct EventTests {
    @Test func waitReturnsAtOnceWhenSet() {
        let event = Event()
        event.set()
        #expect(event.isSet)
        #expect(event.wait(timeout: .zero))
    }

    @Test func waitTimesOutWhenNotSet() {
        let event = Event()
        #expect(!event.wait(timeout: .milliseconds(20)))
    }

    @Test func setWakesBlockedThreads() {
        let event = Event()
        let started = CountDownLatch(count: 4)
        let woke = CountDownLatch(count: 4)
        for _ in 0..<4 {
            Thread.detachNewThread {
                started.countDown()
                if event.wait(timeout: .seconds(30)) { woke.countDown() }
            }
        }
        started.wait()
        event.set()
        #expect(woke.wait(timeout: .seconds(30)))
    }

    @Test func clearMakesWaitsBlockAgain() {
        let event = Event()
        event.set()
        event.clear()
        #expect(!event.isSet)
        #expect(!event.wait(timeout: .milliseconds(5)))
    }

    @Test func asyncWaitResumesOnSet() async throws {
        let event = Event()
        async let waited: Void = event.wait()
        event.set()
        try await waited
        #expect(event.isSet)
    }

    @Test func asyncWaitThrowsWhenCancelled() async {
        let event = Event()
        let task = Task { try await event.wait() }
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(!event.isSet)
    }
}

@Suite struct CountDownLatchTests {
    @Test func opensAfterCountCalls() {
        let latch = CountDownLatch(count: 3)
        latch.countDown()
        latch.countDown()
        #expect(latch.count == 1)
        #expect(!latch.wait(timeout: .milliseconds(5)))
        latch.countDown()
        #expect(latch.wait(timeout: .zero))
        latch.countDown()  // extra calls do nothing
        #expect(latch.count == 0)
    }

    @Test func zeroCountIsOpen() {
        #expect(CountDownLatch(count: 0).wait(timeout: .zero))
    }

    @Test func threadsCountDownForAnAsyncWaiter() async throws {
        let latch = CountDownLatch(count: 8)
        for _ in 0..<8 { Thread.detachNewThread { latch.countDown() } }
        try await latch.wait()
        #expect(latch.count == 0)
    }

    @Test func asyncWaitIsCancellable() async {
        let latch = CountDownLatch(count: 1)
        let task = Task { try await latch.wait() }
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
    }
}
