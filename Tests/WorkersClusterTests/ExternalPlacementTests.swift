#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import WorkersCluster
import WorkersCore
import WorkersProcesses
import WorkersTestJobs

@Suite("External placement over loopback TCP")
struct ExternalPlacementTests {
    @Test("map over two agents equals the local result; both agents are listed")
    func mapEqualsLocal() async throws {
        let agents = TestAgents()
        let pool = try await makeClusterPool(agents: 2, slots: 2, fixture: agents)
        #expect(pool.workers == 4)
        let inputs = Array(0..<20_000)
        let outputs = try await pool.map(Square.self, inputs)
        #expect(outputs == inputs.map { $0 * $0 })
        let one = try await pool.run(Square.self, 12)
        #expect(one == 144)
        let listed = pool.agents
        #expect(listed.count == 2)
        #expect(listed.allSatisfy { $0.isConnected && $0.slots == 2 && $0.address.hasPrefix("127.0.0.1:") && $0.launch == "external" })
        await pool.shutdown()
        #expect(await eventually(within: .seconds(3)) { agents.pids.allSatisfy { !isAlive($0) } })
    }
}

@Suite("Agents pull their work")
struct PullTests {
    /// Notes #11 (Ray's round-robin puts the long tasks on one actor): a host twenty times slower
    /// takes a small share of the work, not half, with each slot holding a batch beyond the one it
    /// runs. The makespan is a benchmark's (`workers-bench cluster`); this checks the shares.
    @Test("a slow host takes less: its share follows its speed, not the host count")
    func aSlowHostTakesLess() async throws {
        let agents = TestAgents()
        let pool = try await ProcessPool(
            jobs: TestJobs.all,
            placement: .external(listen: .address("127.0.0.1"), expect: 2, options: clusterOptions(), announce: { text in
                let words = text.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
                guard let connect = words.firstIndex(of: "--connect"), let key = words.firstIndex(of: "--key-file") else { return }
                _ = try? agents.start(endpoint: words[connect + 1], keyFile: words[key + 1])
                _ = try? agents.start(endpoint: words[connect + 1], keyFile: words[key + 1], extra: ["WORKERS_TEST_PACE": "20"])
            }),
            executable: TestPrograms.worker, heartbeat: testHeartbeat
        )
        // The shares need a machine that runs a 10 ms job in about 10 ms. Under ThreadSanitizer,
        // with the suite beside it, a job's fixed cost was above 200 ms (the slow host ran 31 of
        // 60): there only the results are checked.
        let measuresShares = ProcessInfo.processInfo.environment["WORKERS_STRESS"] == nil
        let jobs = measuresShares ? 60 : 20
        let paces = try await pool.map(Pace.self, Array(repeating: 10, count: jobs), chunkSize: 1)
        await pool.shutdown()
        let slow = paces.filter { $0 == 20 }.count
        #expect(paces.count == jobs && paces.allSatisfy { $0 == 1 || $0 == 20 })
        // Ideal: 2 slots at 10 ms against 2 at 200 ms, so 1/21 (3) on the slow host; a fixed
        // split gives it 30. A loaded machine adds a fixed cost to every job on both hosts, which
        // evens the shares out: in CI, beside the Slurm tests, 25 ms jobs at pace 4 (ideal 12 of
        // 60) gave the slow host 25. So the slow host is slower by far more than such a cost, and
        // up to 40 % still tells pulling from a split.
        if measuresShares { #expect(slow >= 1 && slow <= 24, "the slow host ran \(slow) of \(jobs)") }
    }
}

@Suite("Agents the pool must refuse")
struct RefusedAgentTests {
    @Test("an agent of another build: the pool's start fails naming both builds")
    func otherBuild() async throws {
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("workers-other-build-\(getpid())").path
        try? FileManager.default.removeItem(atPath: copy)
        try FileManager.default.copyItem(atPath: TestPrograms.worker, toPath: copy)
        defer { try? FileManager.default.removeItem(atPath: copy) }
        let handle = try #require(FileHandle(forWritingAtPath: copy))
        handle.seekToEndOfFile()
        handle.write(Data([0x42]))  // the same program, another SHA-256
        try handle.close()
        let agents = TestAgents()
        var options = clusterOptions()
        options.connectTimeout = .seconds(2 * stressScale)
        let launched = Locked<ContinuousClock.Instant?>(nil)
        await #expect {
            _ = try await ProcessPool(
                jobs: TestJobs.all,
                placement: .external(listen: .address("127.0.0.1"), expect: 1, options: options, announce: { text in
                    let words = text.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
                    if let connect = words.firstIndex(of: "--connect"), let key = words.firstIndex(of: "--key-file") {
                        launched.withLock { $0 = .now }
                        _ = try? agents.start(endpoint: words[connect + 1], keyFile: words[key + 1], executable: copy)
                    }
                }),
                executable: TestPrograms.worker, heartbeat: testHeartbeat
            )
        } throws: { error in
            guard let error = error as? ProcessPoolError, case .placementFailed(let detail) = error.code else { return false }
            return detail.contains("0 of 1 agents connected to 127.0.0.1:") && detail.contains("buildMismatch") && detail.contains("build: driver ")
                && detail.contains(", agent ")
        }
        // From the launch: the refused agent does not hold the start past the connect time-out.
        // (Under ThreadSanitizer, with the suite beside it, one run took 22 s for a 6 s time-out.)
        let elapsed = launched.withLock { $0 }.map { $0.duration(to: .now) }
        let slack: Duration = stressScale > 1 ? .seconds(40) : .seconds(5)
        #expect(elapsed.map { $0 < options.connectTimeout + slack } == true, "\(String(describing: elapsed))")
    }

    @Test("no agent at all: the start fails within the connect time-out, naming the address and port")
    func noAgent() async throws {
        var options = clusterOptions()
        options.connectTimeout = .milliseconds(500)
        await #expect {
            _ = try await ProcessPool(
                jobs: TestJobs.all, placement: .external(listen: .address("127.0.0.1"), expect: 2, options: options, announce: { _ in }),
                executable: TestPrograms.worker
            )
        } throws: { error in
            guard let error = error as? ProcessPoolError, case .placementFailed(let detail) = error.code else { return false }
            return detail.contains("0 of 2 agents connected to 127.0.0.1:") && detail.contains("workers worker --connect 127.0.0.1:")
        }
    }

    @Test("an agent that cannot reach its driver exits with an error naming the address and port")
    func unreachableDriver() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: TestPrograms.worker)
        var environment = ProcessInfo.processInfo.environment
        environment["WORKERS_CONNECT"] = "127.0.0.1:1"
        environment["WORKERS_KEY"] = PoolKey.generate().hex
        environment["WORKERS_CONNECT_TIMEOUT"] = "0.5"
        process.environment = environment
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 69)
        #expect(text.contains("cannot connect to 127.0.0.1:1 from "))
    }
}
