#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import Testing
import WorkersCluster
import WorkersCore
import WorkersProcesses
import WorkersTestJobs

/// Real Slurm, real sshd, real TCP between two hosts: host A is this machine, host B a network
/// namespace with its own slurmd and sshd (`scripts/test-hosts.sh`). One test at a time: they
/// share the cluster, and some cut its link or kill its daemons.
@Suite("Slurm and SSH placements on the test hosts", .enabled(if: TestHosts.enabled, TestHosts.reason), .serialized)
struct TestHostsTests {
    func mark() -> String { UUID().uuidString }

    func slurmPool(_ mode: SlurmPlacement, hosts: TestHosts.Hosts, mark: String, retry: RetryPolicy = RetryPolicy(maxAttempts: 3), logger: Logger? = nil) async throws -> ProcessPool {
        try await ProcessPool(
            jobs: TestJobs.all, placement: .slurm(mode, options: hosts.options(mark: mark)),
            executable: TestPrograms.worker, retry: retry, heartbeat: testHeartbeat,
            logger: logger ?? Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        )
    }

    @Test("one srun step, two agents: map of 100,000 empty jobs equals the local pool's result")
    func slurmMap() async throws {
        let hosts = try TestHosts.require()
        let mark = mark()
        let pool = try await slurmPool(.steps(nodes: 1, cpusPerNode: 2, agentsPerNode: 2), hosts: hosts, mark: mark)
        #expect(pool.agents.count == 2)
        #expect(pool.agents.allSatisfy { $0.launch.hasPrefix("slurm job ") })
        let inputs = Array(0..<100_000)
        let remote = try await pool.map(Square.self, inputs)
        let local = try await ProcessPool(workers: 2, jobs: TestJobs.all, executable: TestPrograms.worker)
        #expect(try await local.map(Square.self, inputs) == remote)
        await local.shutdown()
        await pool.shutdown()
        #expect(await eventually(within: .seconds(3)) { markedProcesses(mark).isEmpty })
    }

    @Test("pilot jobs from a login node: an sbatch array's agents dial back; shutdown leaves no job or process")
    func pilotJobs() async throws {
        let hosts = try TestHosts.require()
        let mark = mark()
        let pool = try await slurmPool(.submit(agents: 2, cpusPerAgent: 1, time: "00:05:00"), hosts: hosts, mark: mark)
        #expect(pool.agents.count == 2)
        #expect(pool.agents.allSatisfy { $0.launch.contains(" array task ") })
        let inputs = Array(0..<10_000)
        #expect(try await pool.map(Square.self, inputs) == inputs.map { $0 * $0 })
        await pool.shutdown()
        #expect(await eventually(within: .seconds(3)) { markedProcesses(mark).isEmpty })
        #expect(await eventually(within: .seconds(5)) { (try? hosts.run(["sh", "-c", "[ -z \"$(squeue -h -n workers-agents)\" ]"])) == 0 })
    }

    @Test("two hosts: agents on both (both source addresses seen), the same results")
    func twoHosts() async throws {
        let hosts = try TestHosts.require()
        let mark = mark()
        let pool = try await slurmPool(.steps(nodes: 2, cpusPerNode: 2), hosts: hosts, mark: mark)
        let addresses = Set(pool.agents.map { String($0.address.split(separator: ":")[0]) })
        #expect(addresses == [hosts.a, hosts.b])
        let inputs = Array(0..<10_000)
        #expect(try await pool.map(Square.self, inputs) == inputs.map { $0 * $0 })
        await pool.shutdown()
        #expect(await eventually(within: .seconds(3)) { markedProcesses(mark).isEmpty })
    }

    @Test("host B's link cut mid-map: B lost within lostAfter + one interval, every input once, B's agent exits by itself")
    func cutLink() async throws {
        let hosts = try TestHosts.require()
        let mark = mark()
        let recorder = RecordingLogHandler()
        let pool = try await slurmPool(.steps(nodes: 2, cpusPerNode: 2), hosts: hosts, mark: mark, logger: Logger(label: "test", factory: { _ in recorder }))
        #expect(markedProcesses(mark, inNamespace: hosts.namespaceB).count >= 3)  // B's agent and its two workers
        var cutAt: ContinuousClock.Instant?
        let seen = try await answers(pool, naps: 400) {
            try hosts.run(["ip", "-n", hosts.namespaceB, "link", "set", "veth-swb", "down"])
            cutAt = .now
        }
        defer { _ = try? hosts.run(["ip", "-n", hosts.namespaceB, "link", "set", "veth-swb", "up"]) }
        #expect(seen.allSatisfy { $0 == 1 })
        let lostAt = recorder.first("agent lost")
        if let cutAt, let lostAt {
            let noticed = cutAt.duration(to: lostAt)
            #expect(noticed <= lossBound, "noticed after \(noticed)")
        } else {
            Issue.record("the loss of host B was not logged")
        }
        #expect(pool.agents.filter(\.isConnected).map { String($0.address.split(separator: ":")[0]) } == [hosts.a])
        #expect(await eventually(within: testHeartbeat.lostAfter + .seconds(1 * stressScale)) { markedProcesses(mark, inNamespace: hosts.namespaceB).isEmpty })
        #expect(try await pool.run(Square.self, 5) == 25)
        try hosts.run(["ip", "-n", hosts.namespaceB, "link", "set", "veth-swb", "up"])
        await pool.shutdown()
    }

    @Test("SIGKILL to slurmd on B: the pool is not disturbed (the link is the truth, not Slurm)")
    func killedSlurmd() async throws {
        let hosts = try TestHosts.require()
        let mark = mark()
        let pool = try await slurmPool(.steps(nodes: 2, cpusPerNode: 2), hosts: hosts, mark: mark, retry: RetryPolicy(maxAttempts: 1))
        defer { _ = try? hosts.run([hosts.script, "slurmd-b"]) }
        let slurmd = try #require(hosts.slurmdB)
        let seen = try await answers(pool, naps: 300) { kill(slurmd, SIGKILL) }
        #expect(seen.allSatisfy { $0 == 1 })
        #expect(pool.agents.allSatisfy { $0.isConnected })
        #expect(pool.agents.allSatisfy { $0.losses == 0 })
        await pool.shutdown()
        try hosts.run([hosts.script, "slurmd-b"])
    }

    @Test("SIGKILL to the driver: no agent or worker is left on either host after lostAfter + 1 s")
    func killedDriver() async throws {
        let hosts = try TestHosts.require()
        let mark = mark()
        let driver = Process()
        driver.executableURL = URL(fileURLWithPath: TestPrograms.worker)
        driver.arguments = ["slurm-driver", hosts.a]
        var environment = ProcessInfo.processInfo.environment
        environment["SLURM_CONF"] = hosts.slurmConf
        environment["WORKERS_TEST_MARK"] = mark
        driver.environment = environment
        let output = Pipe()
        driver.standardOutput = output
        driver.standardError = FileHandle.nullDevice
        try driver.run()
        defer { if driver.isRunning { kill(driver.processIdentifier, SIGKILL) } }
        guard let line = LineReader(output.fileHandleForReading).next(), line.hasPrefix("workers ") else {
            Issue.record("the driver did not start its pool")
            return
        }
        #expect(line.split(separator: " ").count == 5)
        #expect(!markedProcesses(mark, inNamespace: hosts.namespaceB).isEmpty)
        kill(driver.processIdentifier, SIGKILL)
        let gone = await eventually(within: testHeartbeat.lostAfter + .seconds(1 * stressScale)) { markedProcesses(mark).isEmpty }
        #expect(gone, "left: \(markedProcesses(mark))")
    }

    /// An external pool with one agent started directly and one by `srun` with `srunOptions`:
    /// returns the pool and the srun agent's Slurm job id.
    func mixedPool(hosts: TestHosts.Hosts, mark: String, srunOptions: [String], agents: TestAgents) async throws -> (ProcessPool, String) {
        let launched = Locked<LaunchedSrun?>(nil)
        let pool = try await ProcessPool(
            jobs: TestJobs.all,
            placement: .external(listen: .address(hosts.a), expect: 2, options: hosts.options(mark: mark), announce: { text in
                let words = text.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
                guard let connect = words.firstIndex(of: "--connect"), let key = words.firstIndex(of: "--key-file") else { return }
                _ = try? agents.start(endpoint: words[connect + 1], keyFile: words[key + 1])
                launched.withLock { $0 = try? LaunchedSrun(srunOptions, endpoint: words[connect + 1], keyFile: words[key + 1], hosts: hosts, mark: mark) }
            }),
            executable: TestPrograms.worker, retry: RetryPolicy(maxAttempts: 1), heartbeat: testHeartbeat
        )
        let job = try #require(pool.agents.first { $0.launch.hasPrefix("slurm job ") }?.launch.split(separator: " ")[2])
        return (pool, String(job))
    }

    @Test("scancel --signal=TERM drains the agent: nothing fails without retries, and it leaves")
    func scancelTerm() async throws {
        let hosts = try TestHosts.require()
        let mark = mark()
        let agents = TestAgents()
        let (pool, job) = try await mixedPool(hosts: hosts, mark: mark, srunOptions: [], agents: agents)
        let seen = try await answers(pool, naps: 200, milliseconds: 10) {
            try hosts.run(["scancel", "--signal=TERM", job])
        }
        #expect(seen.allSatisfy { $0 == 1 })
        #expect(await eventually(within: .seconds(5)) { pool.agents.filter(\.isConnected).count == 1 })
        #expect(pool.agents.allSatisfy { $0.losses == 0 })
        await pool.shutdown()
    }

    @Test("a walltime: srun --time=1 --signal=USR1@58 drains the agent before its limit; nothing fails")
    func walltime() async throws {
        let hosts = try TestHosts.require()
        let mark = mark()
        let agents = TestAgents()
        let (pool, _) = try await mixedPool(hosts: hosts, mark: mark, srunOptions: ["--time=1", "--signal=USR1@58"], agents: agents)
        // Keep both agents busy until Slurm's warning drains the srun one. Slurm checks time
        // limits on a timer of about 30 s, so the warning comes 2–35 s in; at the limit itself
        // (60 s) the agent gets SIGTERM, which drains it too.
        let start = ContinuousClock.now
        var failures = 0
        while pool.agents.filter(\.isConnected).count == 2, start.duration(to: .now) < .seconds(90) {
            do {
                _ = try await pool.map(Nap.self, [Int](repeating: 20, count: 40), chunkSize: 1)
            } catch {
                failures += 1
            }
        }
        #expect(pool.agents.filter(\.isConnected).count == 1, "no drain within 90 s")
        _ = try await pool.map(Nap.self, [Int](repeating: 5, count: 40), chunkSize: 1)
        #expect(failures == 0)
        #expect(pool.agents.allSatisfy { $0.losses == 0 })
        await pool.shutdown()
    }

    @Test("SSH placement with sshd on host B: the same results; a killed ssh leaves nothing on B after 1 s")
    func sshPlacement() async throws {
        let hosts = try TestHosts.require()
        let mark = mark()
        let pool = try await ProcessPool(
            jobs: TestJobs.all, placement: .ssh(hosts: ["2/root@\(hosts.b)"], options: hosts.options(mark: mark)),
            executable: TestPrograms.worker, heartbeat: testHeartbeat
        )
        #expect(pool.agents.map(\.launch) == ["ssh root@\(hosts.b)"])
        let inputs = Array(0..<10_000)
        #expect(try await pool.map(Square.self, inputs) == inputs.map { $0 * $0 })
        #expect(markedProcesses(mark, inNamespace: hosts.namespaceB).count == 3)  // the agent, two workers
        // The ssh client is the one process on this host whose command line carries the mark.
        let ssh = try #require(commandLines(containing: mark).first)
        kill(ssh, SIGKILL)
        let gone = await eventually(within: .seconds(1 * stressScale)) { markedProcesses(mark, inNamespace: hosts.namespaceB).isEmpty }
        #expect(gone, "left on B: \(markedProcesses(mark, inNamespace: hosts.namespaceB))")
        await pool.shutdown()
    }
}

/// An agent started by `srun` on the test hosts' Slurm cluster.
struct LaunchedSrun {
    let process: Process

    init(_ options: [String], endpoint: String, keyFile: String, hosts: TestHosts.Hosts, mark: String) throws {
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/srun")
        process.arguments = ["--nodes=1", "--ntasks=1", "--cpus-per-task=2", "--quiet"] + options + [TestPrograms.worker]
        var environment = ProcessInfo.processInfo.environment
        environment["SLURM_CONF"] = hosts.slurmConf
        environment["WORKERS_CONNECT"] = endpoint
        environment["WORKERS_KEY_FILE"] = keyFile
        environment["WORKERS_SLOTS"] = "2"
        environment["WORKERS_TEST_MARK"] = mark
        process.environment = environment
        process.standardError = FileHandle.nullDevice
        try process.run()
    }
}

/// Live processes whose command line contains `text`.
func commandLines(containing text: String) -> [Int32] {
    let needle = Array(text.utf8)
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { Int32($0) }.filter { pid in
        guard pid != getpid(), isAlive(pid), let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
        let bytes = Array(data)
        return bytes.count >= needle.count && (0...(bytes.count - needle.count)).contains { Array(bytes[$0..<($0 + needle.count)]) == needle }
    }
}
