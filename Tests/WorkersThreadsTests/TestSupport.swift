import Foundation
import Synchronization
import WorkersCore
@testable import WorkersThreads

/// Waits until `condition` holds, for state that no event signals (thread counts, queue depths).
/// Fails the wait after `timeout` rather than hanging the suite.
func eventually(
    timeout: Duration = .seconds(30),
    _ condition: () -> Bool
) async -> Bool {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while !condition() {
        if ContinuousClock.now > deadline { return false }
        try? await Task.sleep(for: .milliseconds(1))
    }
    return true
}

/// The names of this process's threads that start with `prefix`.
func threadNames(prefix: String) -> [String] {
    let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
    return tasks.compactMap { tid in
        guard let name = try? String(contentsOfFile: "/proc/self/task/\(tid)/comm", encoding: .utf8) else { return nil }
        let trimmed = name.trimmingCharacters(in: .whitespacesAndNewlines)
        return trimmed.hasPrefix(prefix) ? trimmed : nil
    }
}

/// A unique thread-name prefix per test, within the kernel's 15 bytes with room for `-NN`.
func uniquePrefix() -> String {
    "t" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
}

struct Boom: Error, Equatable {
    var value = 0
}

enum Probe {
    @TaskLocal static var requestID: String?
}

final class Counter: Sendable {
    private let value = Atomic<Int>(0)
    func increment() { value.add(1, ordering: .relaxed) }
    var count: Int { value.load(ordering: .relaxed) }
}

/// Tracks how many bodies run at once.
final class Concurrency: Sendable {
    private let current = Atomic<Int>(0)
    private let highest = Atomic<Int>(0)
    func enter() { highest.max(current.add(1, ordering: .relaxed).newValue, ordering: .relaxed) }
    func leave() { current.subtract(1, ordering: .relaxed) }
    var peak: Int { highest.load(ordering: .relaxed) }
}

/// A job that holds one of a pool's threads until ``release()``.
struct Occupant {
    private let gate = Event()
    private let task: Task<Void, any Error>

    /// Starts the job and returns once it runs on the pool.
    init(of pool: ThreadPool, finished: Counter? = nil) async throws {
        let gate = self.gate
        let started = CountDownLatch(count: 1)
        task = Task {
            try await pool.run {
                started.countDown()
                gate.wait()
                finished?.increment()
            }
        }
        try await started.wait()
    }

    /// Lets the job finish and waits for it.
    func release() async throws {
        gate.set()
        try await task.value
    }
}
