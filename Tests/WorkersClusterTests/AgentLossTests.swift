#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import MetricsTestKit
import Testing
import WorkersCluster
import WorkersCore
import WorkersProcesses
import WorkersTestJobs

@Suite("Agents lost, drained and killed", .serialized)  // each runs two agents of two workers: under ThreadSanitizer, six at once starve the heartbeats
struct AgentLossTests {
    @Test("a killed agent: its batches run elsewhere, every input answered once, the pool carries on")
    func killedAgent() async throws {
        let agents = TestAgents()
        let metrics = TestMetrics()
        let pool = try await makeClusterPool(agents: 2, slots: 2, fixture: agents, metrics: metrics)
        let victim = agents.pids[1]
        let seen = try await answers(pool, naps: 200, milliseconds: 5) { kill(victim, SIGKILL) }
        #expect(seen.allSatisfy { $0 == 1 })
        let listed = pool.agents
        #expect(listed.filter(\.isConnected).count == 1)
        #expect(try await pool.run(Square.self, 7) == 49)
        #expect(try metrics.expectCounter("test.cluster.agents", [("event", "joined")]).totalValue == 2)
        #expect(try metrics.expectCounter("test.cluster.agents", [("event", "lost")]).totalValue == 1)
        #expect(pool.agents.first { !$0.isConnected }.map { $0.losses >= 1 } == true)
        await pool.shutdown()
    }

    @Test("a silent agent is lost within lostAfter plus one interval, and exits on its own once it can")
    func silentAgent() async throws {
        let agents = TestAgents()
        let recorder = RecordingLogHandler()
        let pool = try await makeClusterPool(agents: 2, slots: 2, fixture: agents, logger: Logger(label: "test", factory: { _ in recorder }))
        let victim = agents.pids[1]
        let stopped = Locked<ContinuousClock.Instant?>(nil)
        let seen = try await answers(pool, naps: 300, milliseconds: 5) {
            kill(victim, SIGSTOP)
            stopped.withLock { $0 = .now }
        }
        #expect(seen.allSatisfy { $0 == 1 })
        // The map can end before the loss: when the agent was stopped holding no batch (under
        // ThreadSanitizer, with the suite running, the other agent may have taken them all),
        // nothing waited for it. Its loss comes all the same, within the bound checked below.
        #expect(await eventually(within: lossBound + .seconds(1)) { pool.agents.filter(\.isConnected).count == 1 })
        if let start = stopped.withLock({ $0 }), let lost = recorder.first("agent lost") {
            let noticed = start.duration(to: lost)
            #expect(noticed <= lossBound, "noticed after \(noticed)")
        } else {
            Issue.record("the silent agent's loss was not logged")
        }
        kill(victim, SIGCONT)
        #expect(await eventually(within: .seconds(5)) { !isAlive(victim) })
        await pool.shutdown()
    }

    @Test("SIGTERM drains an agent: nothing fails even without retries, and it exits 0")
    func drainedAgent() async throws {
        let agents = TestAgents()
        let pool = try await makeClusterPool(agents: 2, slots: 2, retry: RetryPolicy(maxAttempts: 1), fixture: agents)
        let victim = agents.pids[1]
        let seen = try await answers(pool, naps: 200, milliseconds: 10) { kill(victim, SIGTERM) }
        #expect(seen.allSatisfy { $0 == 1 })
        #expect(await eventually(within: .seconds(5)) { !isAlive(victim) })
        await pool.shutdown()
    }

    /// With prefetch the driver sends each slot its next batch before the answer; a draining
    /// agent must still fall idle: it runs what its workers had, not the rest of the queue.
    @Test("a draining agent finishes the batches its workers hold, not the pool's queue")
    func drainingAgentStopsTakingWork() async throws {
        let agents = TestAgents()
        let pool = try await makeClusterPool(agents: 2, slots: 2, retry: RetryPolicy(maxAttempts: 1), fixture: agents)
        let victim = agents.pids[1]
        var victimWorkers: Set<Int32> = []
        var afterDrain = 0
        var seen = [Int](repeating: 0, count: 300)
        for try await (index, pid) in pool.mapUnordered(Nap.self, [Int](repeating: 5, count: 300), chunkSize: 1) {
            seen[index] += 1
            if victimWorkers.isEmpty {
                victimWorkers = childProcesses(of: victim)
                kill(victim, SIGTERM)
            } else if victimWorkers.contains(pid) {
                afterDrain += 1
            }
        }
        #expect(!victimWorkers.isEmpty)
        #expect(seen.allSatisfy { $0 == 1 })
        // What its two slots held (two each) and answers already on their way; without the
        // drain it would take about half of the 299 left.
        #expect(afterDrain <= 16, "the draining agent ran \(afterDrain) more batches")
        #expect(await eventually(within: .seconds(5)) { !isAlive(victim) })
        await pool.shutdown()
    }

    @Test("a job that kills its worker on every node fails alone after maxAttempts; the rest succeed")
    func poisonInput() async throws {
        let agents = TestAgents()
        let pool = try await makeClusterPool(agents: 2, slots: 2, retry: RetryPolicy(maxAttempts: 3), fixture: agents)
        let results = await withTaskGroup(of: (Int, Result<Int, ProcessPoolError>).self) { group in
            for index in 0..<40 {
                group.addTask {
                    do {
                        return (index, .success(try await pool.run(CrashIf.self, CrashIf.Input(value: index, crash: index == 17))))
                    } catch let error as ProcessPoolError {
                        return (index, .failure(error))
                    } catch {
                        return (index, .failure(ProcessPoolError(.shutDown)))
                    }
                }
            }
            var all: [Int: Result<Int, ProcessPoolError>] = [:]
            for await (index, result) in group { all[index] = result }
            return all
        }
        for index in 0..<40 where index != 17 { #expect(results[index] == .success(index)) }
        guard case .failure(let error)? = results[17] else {
            Issue.record("the poison input did not fail")
            return
        }
        #expect(error.code == .workerCrashed(signal: nil, exitCode: 9))
        await pool.shutdown()
    }

    @Test("SIGKILL of the driver: its agents and their workers are gone within lostAfter + 1 s")
    func killedDriver() async throws {
        let driver = Process()
        driver.executableURL = URL(fileURLWithPath: TestPrograms.worker)
        driver.arguments = ["cluster-driver", "2"]
        let output = Pipe()
        driver.standardOutput = output
        driver.standardError = FileHandle.nullDevice
        try driver.run()
        defer { if driver.isRunning { kill(driver.processIdentifier, SIGKILL) } }
        let lines = LineReader(output.fileHandleForReading)
        guard let connect = lines.next(), connect.hasPrefix("connect ") else {
            Issue.record("no connect line from the driver")
            return
        }
        let words = connect.split(separator: " ").map(String.init)
        let agents = TestAgents()
        try agents.start(endpoint: words[1], keyFile: words[2])
        try agents.start(endpoint: words[1], keyFile: words[2])
        guard let workers = lines.next(), workers.hasPrefix("workers ") else {
            Issue.record("no workers line from the driver")
            return
        }
        let workerPIDs = workers.split(separator: " ").dropFirst().compactMap { Int32($0) }
        #expect(workerPIDs.count == 4)
        #expect(workerPIDs.allSatisfy(isAlive))
        kill(driver.processIdentifier, SIGKILL)
        let everything = agents.pids + workerPIDs
        let gone = await eventually(within: testHeartbeat.lostAfter + .seconds(1 * stressScale)) { everything.allSatisfy { !isAlive($0) } }
        #expect(gone, "left running: \(everything.filter(isAlive))")
    }
}

/// Lines from a pipe, read as they come.
final class LineReader {
    private let handle: FileHandle
    private var buffer: [UInt8] = []

    init(_ handle: FileHandle) {
        self.handle = handle
    }

    func next() -> String? {
        while true {
            if let newline = buffer.firstIndex(of: 0x0A) {
                let line = String(decoding: buffer[..<newline], as: UTF8.self)
                buffer.removeSubrange(...newline)
                return line
            }
            let data = handle.availableData
            if data.isEmpty { return nil }
            buffer.append(contentsOf: data)
        }
    }
}

/// A value shared between test tasks, behind a lock.
final class Locked<Value>: @unchecked Sendable {  // @unchecked: `value` is guarded by `lock`.
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<T>(_ body: (inout Value) throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
