#if canImport(Glibc)
import Glibc
#endif
import Foundation
import CoreMetrics
import Logging
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

/// Times are stretched this much in the stress run (ThreadSanitizer on a loaded machine).
let stressScale: Int64 = ProcessInfo.processInfo.environment["WORKERS_STRESS"] == nil ? 1 : 3

/// How much longer the test heartbeat is under stress: under ThreadSanitizer, with the whole
/// suite running, driver, agent and workers (all sanitized) share two cores, and one of them can
/// stall for several seconds.
let heartbeatScale: Int64 = ProcessInfo.processInfo.environment["WORKERS_STRESS"] == nil ? 1 : 8

/// A fast heartbeat for tests: losses are noticed in about a second (eight under stress).
let testHeartbeat = Heartbeat(interval: .milliseconds(100 * heartbeatScale), lostAfter: .seconds(1 * heartbeatScale))

/// The longest a loss may take to be noticed: lostAfter plus one interval, plus scheduling slack.
let lossBound = testHeartbeat.lostAfter + testHeartbeat.interval + .milliseconds(300 * stressScale)

/// A pool of `agents` local agents of `slots` slots each, over loopback TCP; `fixture` owns the
/// agents' processes (and kills them when dropped), so keep it as long as the pool.
func makeClusterPool(agents: Int = 2, slots: Int = 2, retry: RetryPolicy = RetryPolicy(maxAttempts: 3), fixture: TestAgents, announcement: Announcement = Announcement(), logger: Logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }), metrics: (any MetricsFactory)? = nil) async throws -> ProcessPool {
    try await ProcessPool(
        jobs: TestJobs.all,
        placement: .external(listen: .address("127.0.0.1"), expect: agents, options: clusterOptions(), announce: announcement.handler(starting: agents, with: fixture, slots: slots)),
        executable: TestPrograms.worker, retry: retry, heartbeat: testHeartbeat, logger: logger,
        metricsFactory: metrics, metricsLabel: "test.cluster"
    )
}

func clusterOptions() -> ClusterOptions {
    var options = ClusterOptions()
    // Agents under ThreadSanitizer, started while the whole suite runs, once took over 20 s to join
    // (every agent test of one fresh-clone CI run failed together): the stress runs wait longer.
    options.connectTimeout = .seconds(20 * stressScale)
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

/// The processes whose parent is `pid` (an agent's workers), from `/proc`.
func childProcesses(of pid: Int32) -> Set<Int32> {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    var children: Set<Int32> = []
    for entry in entries {
        guard let child = Int32(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { continue }
        // After the name: state, then the parent's pid.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        if fields.count > 1, Int32(fields[1]) == pid { children.insert(child) }
    }
    return children
}

func isAlive(_ pid: Int32) -> Bool {
    guard kill(pid, 0) == 0 else { return false }
    // A zombie is dead for our purposes.
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return false }
    let state = stat[stat.index(close, offsetBy: 2)]
    return state != "Z" && state != "X"
}

/// The hosts `scripts/test-hosts.sh up` made: a two-node Slurm cluster (host A is this machine,
/// host B a network namespace) and an sshd in B. The tests that need them skip on a machine
/// without them, saying so — except in CI (`CI` set), where they must run and fail instead.
enum TestHosts {
    static let variables: [String: String]? = {
        let path = ProcessInfo.processInfo.environment["WORKERS_TEST_HOSTS_ENV"] ?? "/tmp/workers-test-hosts/env"
        guard getuid() == 0, let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        var variables: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            variables[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        return variables
    }()

    static var required: Bool {
        let environment = ProcessInfo.processInfo.environment
        return environment["CI"] != nil || environment["WORKERS_REQUIRE_TEST_HOSTS"] != nil
    }
    static var enabled: Bool { variables != nil || required }
    static let reason: Comment = "needs root and the test hosts: run `scripts/test-hosts.sh up` (CI does)"

    struct Hosts {
        var variables: [String: String]
        var a: String { variables["WORKERS_TEST_HOST_A"]! }
        var b: String { variables["WORKERS_TEST_HOST_B"]! }
        var namespaceB: String { variables["WORKERS_TEST_NETNS_B"]! }
        /// Host C: a second namespace with an sshd (and no slurmd), for `workers run -S`.
        var c: String { variables["WORKERS_TEST_HOST_C"]! }
        var namespaceC: String { variables["WORKERS_TEST_NETNS_C"]! }
        var slurmConf: String { variables["SLURM_CONF"]! }
        var sshOptions: [String] { variables["WORKERS_TEST_SSH_OPTIONS"]!.split(separator: " ").map(String.init) }
        var script: String { variables["WORKERS_TEST_HOSTS_SCRIPT"]! }

        /// Runs the hosts script (`slurmd-b`) or a command, and waits for it.
        @discardableResult
        func run(_ arguments: [String]) throws -> Int32 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = arguments
            var environment = ProcessInfo.processInfo.environment
            environment["SLURM_CONF"] = slurmConf
            process.environment = environment
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            process.waitUntilExit()
            return process.terminationStatus
        }

        /// Options for a placement on these hosts, with `mark` in the agents' environment.
        func options(mark: String, listen: ListenAddress? = nil) -> ClusterOptions {
            var options = clusterOptions()
            options.listen = listen ?? .address(a)
            options.environment = ["SLURM_CONF": slurmConf, "WORKERS_TEST_MARK": mark]
            options.ssh = ["ssh"] + sshOptions
            return options
        }

        /// The pid of B's slurmd.
        var slurmdB: Int32? {
            (try? String(contentsOfFile: "/tmp/workers-test-hosts/run/slurmd-nb.pid", encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
    }

    static func require() throws -> Hosts {
        guard let variables else {
            throw ClusterError(.launchFailed, "the test hosts are not up: run `scripts/test-hosts.sh up` as root")
        }
        return Hosts(variables: variables)
    }
}

/// Live processes (not zombies, not this one) whose environment holds `WORKERS_TEST_MARK=mark`,
/// in network namespace `namespace` if given; Slurm's own step daemons are left out.
func markedProcesses(_ mark: String, inNamespace namespace: String? = nil) -> [Int32] {
    let needle = Array("WORKERS_TEST_MARK=\(mark)".utf8)
    var namespaceLink: String?
    if let namespace {
        var status = stat()
        guard stat("/run/netns/\(namespace)", &status) == 0 else { return [] }
        namespaceLink = "net:[\(status.st_ino)]"
    }
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { Int32($0) }.filter { pid in
        guard pid != getpid(), isAlive(pid) else { return false }
        if let namespaceLink, (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/net")) != namespaceLink { return false }
        if let name = try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8), name.hasPrefix("slurmstepd") { return false }
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return false }
        return data.split(separator: 0).contains { Array($0) == needle }
    }
}

/// A log handler that keeps each message with the instant it was logged: the tests' event
/// signal for what the pool only logs (an agent lost).
final class RecordingLogHandler: LogHandler, @unchecked Sendable {  // @unchecked: `lock` guards `records`.
    private let lock = NSLock()
    private var records: [(message: String, at: ContinuousClock.Instant)] = []
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let message = event.message.description
        lock.withLock { records.append((message, .now)) }
    }

    /// When `message` was first logged.
    func first(_ message: String) -> ContinuousClock.Instant? {
        lock.withLock { records.first { $0.message == message }?.at }
    }
}

/// Runs `count` naps of `milliseconds` through `mapUnordered`, one per batch; calls `event` after
/// the first answer (to kill, stop, cut or drain something mid-map); returns how many times each
/// index was answered.
func answers(_ pool: ProcessPool, naps count: Int, milliseconds: Int = 5, after event: () throws -> Void) async throws -> [Int] {
    var seen = [Int](repeating: 0, count: count)
    var fired = false
    for try await (index, _) in pool.mapUnordered(Nap.self, [Int](repeating: milliseconds, count: count), chunkSize: 1) {
        seen[index] += 1
        if !fired {
            fired = true
            try event()
        }
    }
    return seen
}
