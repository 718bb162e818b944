#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import WorkersCluster
import WorkersCore
import WorkersProcesses
import WorkersTestJobs

/// Agents the test starts itself, as an external launcher would: the test worker program with
/// `WORKERS_CONNECT` and `WORKERS_KEY_FILE` set. Each is killed when the set is dropped.
final class TestAgents: @unchecked Sendable {  // @unchecked: `lock` guards `processes`.
    private let lock = NSLock()
    private var processes: [Process] = []
    let environment: [String: String]

    init(environment: [String: String] = [:]) {
        self.environment = environment
    }

    /// Starts one agent for `endpoint` with the key in `keyFile`.
    @discardableResult
    func start(endpoint: String, keyFile: String?, slots: Int = 2, executable: String = TestPrograms.worker, extra: [String: String] = [:]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        var variables = ProcessInfo.processInfo.environment
        variables["WORKERS_CONNECT"] = endpoint
        if let keyFile { variables["WORKERS_KEY_FILE"] = keyFile }
        variables["WORKERS_SLOTS"] = String(slots)
        variables["WORKERS_CONNECT_TIMEOUT"] = "5"
        for (name, value) in environment.merging(extra, uniquingKeysWith: { $1 }) { variables[name] = value }
        process.environment = variables
        process.standardError = FileHandle.nullDevice
        try process.run()
        lock.withLock { processes.append(process) }
        return process
    }

    var pids: [Int32] { lock.withLock { processes.map(\.processIdentifier) } }

    deinit {
        for process in processes where process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

/// The endpoint and key file an external placement announced, and a latch for when it did.
final class Announcement: @unchecked Sendable {  // @unchecked: `lock` guards the fields.
    private let lock = NSLock()
    private(set) var endpoint = ""
    private(set) var keyFile = ""

    /// Parses the placement's announcement and starts `count` agents for it.
    func handler(starting count: Int, with agents: TestAgents, slots: Int = 2) -> @Sendable (String) -> Void {
        { [self] text in
            guard let line = text.split(separator: "\n").first(where: { $0.contains("--connect") }) else { return }
            let words = line.split(separator: " ").map(String.init)
            guard let connect = words.firstIndex(of: "--connect"), let key = words.firstIndex(of: "--key-file") else { return }
            lock.withLock {
                endpoint = words[connect + 1]
                keyFile = words[key + 1]
            }
            for _ in 0..<count { _ = try? agents.start(endpoint: words[connect + 1], keyFile: words[key + 1], slots: slots) }
        }
    }
}

/// A fast heartbeat for tests: losses are noticed in about a second.
let testHeartbeat = Heartbeat(interval: .milliseconds(100), lostAfter: .seconds(1))

/// A pool of `agents` local agents of `slots` slots each, over loopback TCP; `fixture` owns the
/// agents' processes (and kills them when dropped), so keep it as long as the pool.
func makeClusterPool(agents: Int = 2, slots: Int = 2, retry: RetryPolicy = RetryPolicy(maxAttempts: 3), fixture: TestAgents, announcement: Announcement = Announcement()) async throws -> ProcessPool {
    try await ProcessPool(
        jobs: TestJobs.all,
        placement: .external(listen: .address("127.0.0.1"), expect: agents, options: clusterOptions(), announce: announcement.handler(starting: agents, with: fixture, slots: slots)),
        executable: TestPrograms.worker, retry: retry, heartbeat: testHeartbeat
    )
}

func clusterOptions() -> ClusterOptions {
    var options = ClusterOptions()
    options.connectTimeout = .seconds(20)
    options.keyDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("workers-keys-\(getpid())").path
    return options
}

/// Waits until `condition` holds or `timeout` passes; returns whether it held. For what only the
/// kernel can tell (a process gone), which no latch signals.
func eventually(within timeout: Duration, _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return condition()
}

func isAlive(_ pid: Int32) -> Bool {
    guard kill(pid, 0) == 0 else { return false }
    // A zombie is dead for our purposes.
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return false }
    let state = stat[stat.index(close, offsetBy: 2)]
    return state != "Z" && state != "X"
}
