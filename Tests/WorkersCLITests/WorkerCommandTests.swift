#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import WorkersCluster
import WorkersLab
import WorkersProcesses

/// `workers worker --connect`: the node agent a user starts by hand or from any launcher.
@Suite struct WorkerCommandTests {
    @Test("a bad --connect names the flag")
    func badConnect() async throws {
        let output = try await WorkersBinaryTests.run(["worker", "--connect", "nowhere"])
        #expect(output.status == 64)
        #expect(output.stderr.contains("--connect"))
    }

    @Test("a key file others can read is refused before connecting, naming its mode")
    func openKeyFile() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("workers-cli-key-\(getpid())").path
        try? FileManager.default.removeItem(atPath: directory)
        let path = try PoolKey.generate().writeToNewDirectory(under: directory)
        chmod(path, 0o640)
        let output = try await WorkersBinaryTests.run(["worker", "--connect", "127.0.0.1:9", "--key-file", path])
        #expect(output.status == 64)
        #expect(output.stderr.contains("mode 640"))
    }

    @Test("the agent the driver announces runs the lab's jobs for it")
    func agentServesThePool() async throws {
        let binary = WorkersBinaryTests.binary.path
        let started = AgentProcess()
        var options = ClusterOptions()
        options.connectTimeout = .seconds(20)
        options.keyDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("workers-cli-keys-\(getpid())").path
        let pool = try await ProcessPool(
            jobs: LabJobs.all,
            placement: .external(listen: .address("127.0.0.1"), expect: 1, options: options, announce: { text in
                // The first command the driver prints, as a user would paste it.
                guard let line = text.split(separator: "\n").first(where: { $0.contains("workers worker") }) else { return }
                let words = line.split(separator: " ").map(String.init).drop { $0 != "worker" }
                started.start(binary, Array(words) + ["--slots", "2"])
            }),
            executable: binary
        )
        #expect(pool.workers == 2)
        let timings = try await pool.map(SleepJob.self, [0.01, 0.01, 0.01, 0.01])
        #expect(timings.count == 4)
        #expect(pool.agents.first?.launch == "external")
        await pool.shutdown()
        #expect(started.waitForExit() == 0)
    }
}

/// One `workers worker` process.
final class AgentProcess: @unchecked Sendable {  // @unchecked: `lock` guards `process`.
    private let lock = NSLock()
    private var process: Process?

    func start(_ binary: String, _ arguments: [String]) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.standardError = FileHandle.nullDevice
        try? process.run()
        lock.withLock { self.process = process }
    }

    func waitForExit() -> Int32? {
        guard let process = lock.withLock({ process }) else { return nil }
        process.waitUntilExit()
        return process.terminationStatus
    }
}
