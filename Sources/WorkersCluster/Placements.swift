#if canImport(Glibc)
import Glibc
#endif
import CWorkersShims
import Crypto
import Foundation
import Logging
import WorkersCore
import WorkersProcesses

/// Where the driver listens for its agents, and the address it tells them to dial.
public struct ListenAddress: Hashable, Sendable {
    enum Host: Hashable, Sendable {
        case automatic
        case address(String)
        case interface(String)
    }

    let host: Host
    /// The port; 0 (the default) takes any free one.
    public var port: UInt16

    /// Every interface; agents are told the first address that is not loopback (or 127.0.0.1
    /// if there is none).
    public static let auto = ListenAddress(host: .automatic, port: 0)

    /// This IPv4 address (`127.0.0.1` for agents on this machine only).
    public static func address(_ address: String, port: UInt16 = 0) -> ListenAddress {
        ListenAddress(host: .address(address), port: port)
    }

    /// The IPv4 address of this interface (`ib0`, `eth1`): for a cluster whose nodes reach the
    /// driver on another network than its default one.
    public static func interface(_ name: String, port: UInt16 = 0) -> ListenAddress {
        ListenAddress(host: .interface(name), port: port)
    }

    /// The address to bind and the address to advertise.
    func resolve() throws(ClusterError) -> (bind: String, advertise: String) {
        switch host {
        case .address(let address):
            return (address, address)
        case .interface(let name):
            guard let address = Self.interfaceAddresses().first(where: { $0.name == name })?.address else {
                throw ClusterError(.connectFailed, "no IPv4 address on interface \(name) (have: \(Self.interfaceAddresses().map { "\($0.name) \($0.address)" }.joined(separator: ", ")))")
            }
            return (address, address)
        case .automatic:
            let address = Self.interfaceAddresses().first(where: { !$0.address.hasPrefix("127.") })?.address ?? "127.0.0.1"
            return ("0.0.0.0", address)
        }
    }

    static func interfaceAddresses() -> [(name: String, address: String)] {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return [] }
        defer { freeifaddrs(list) }
        var found: [(String, String)] = []
        var cursor = list
        while let entry = cursor {
            defer { cursor = entry.pointee.ifa_next }
            guard let address = entry.pointee.ifa_addr, address.pointee.sa_family == sa_family_t(AF_INET),
                  entry.pointee.ifa_flags & UInt32(IFF_UP) != 0 else { continue }
            let ipv4 = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee }
            let text = SocketAddress.describe(ipv4)
            found.append((String(cString: entry.pointee.ifa_name), String(text[..<text.lastIndex(of: ":")!])))
        }
        return found
    }
}

/// The link options of a placement beyond this machine.
public struct ClusterOptions: Sendable {
    /// Where the driver listens (not used by SSH placements, whose links are the ssh
    /// connections). Default ``ListenAddress/auto``.
    public var listen: ListenAddress = .auto
    /// How long the pool's start waits for every agent to connect, and a slot for an agent
    /// with a free slot. Default 60 s.
    public var connectTimeout: Duration = .seconds(60)
    /// Refuse agents whose executable's SHA-256 differs from the pool's. Default `true`.
    public var checksBuild = true
    /// Where the key file's private directory is made; default `~/.cache/swift-workers`,
    /// which must be on a filesystem the nodes share (the SSH placement needs none).
    public var keyDirectory: String?
    /// How long before a Slurm time limit the agents are signalled to drain
    /// (`--signal=USR1@…`). Default 60 s.
    public var drainLead: Duration = .seconds(60)
    /// The ssh command and options, before the login (`["ssh", "-i", "key"]`).
    public var ssh: [String] = ["ssh"]
    /// Extra variables for the agents' environment (through `srun`, `sbatch` and `ssh`).
    public var environment: [String: String] = [:]
    /// Batches sent to each remote worker beyond the one it runs, so it starts the next without
    /// waiting a network round trip. An agent thus holds at most `slots × (1 + prefetchPerSlot)`
    /// batches; a slow one still takes less, since it asks for more only as it answers. A batch
    /// waiting behind a running one is not charged an attempt when its worker is lost, and a
    /// cancelled one kills its worker (the batch running there runs again). Default 1; 0 sends
    /// a worker its next batch only after its answer arrives.
    public var prefetchPerSlot = 1

    /// The defaults.
    public init() {}
}

/// Placements on a Slurm cluster.
public enum SlurmPlacement: Hashable, Sendable {
    /// Inside an `sbatch` or `salloc` allocation (or, outside one, in an allocation `srun`
    /// makes): one `srun --no-kill` step starts `agentsPerNode` agents on each of `nodes` nodes,
    /// each with `cpusPerNode / agentsPerNode` worker slots.
    case steps(nodes: Int, cpusPerNode: Int, agentsPerNode: Int = 1)
    /// From a login node: a job array of `agents` pilot jobs whose agents dial back, each with
    /// `cpusPerAgent` slots, for at most `time` (Slurm's syntax, `01:00:00`).
    case submit(agents: Int, cpusPerAgent: Int, time: String, partition: String? = nil, extra: [String] = [])
}

/// One SSH login in GNU parallel's syntax: `[slots/][user@]host[:port]`.
public struct SSHLogin: Hashable, Sendable {
    /// Worker slots on the host; `nil`: its CPU count, as the agent finds it.
    public var slots: Int?
    /// `user@host` or `host`.
    public var destination: String
    public var port: Int?

    /// Parses `8/alice@node1:2222`, `node2`, `2/node3`.
    public init(_ text: String) throws(ClusterError) {
        var rest = Substring(text.trimmingCharacters(in: .whitespaces))
        if let slash = rest.firstIndex(of: "/"), let count = Int(rest[..<slash]) {
            guard count >= 1 else { throw ClusterError(.launchFailed, "sshlogin \(text): slots must be at least 1") }
            slots = count
            rest = rest[rest.index(after: slash)...]
        }
        if let colon = rest.lastIndex(of: ":"), let number = Int(rest[rest.index(after: colon)...]) {
            port = number
            rest = rest[..<colon]
        }
        guard !rest.isEmpty, !rest.contains(" ") else { throw ClusterError(.launchFailed, "sshlogin \"\(text)\" has no host") }
        destination = String(rest)
    }

    /// The ssh command that starts an agent on the host with its link on the connection.
    func command(ssh: [String], executable: String, environment: [String: String]) -> [String] {
        var arguments = ssh + ["-o", "BatchMode=yes", "-T"]
        if let port { arguments += ["-p", String(port)] }
        var variables = environment
        variables[NodeAgentEntry.connectVariable] = "stdio"
        variables[NodeAgent.launchVariable] = "ssh \(destination)"
        if let slots { variables[NodeAgent.slotsVariable] = String(slots) }
        let assignments = variables.sorted { $0.key < $1.key }.map { "\($0.key)=\(shellQuoted($0.value))" }
        arguments += [destination, "--", "exec env " + assignments.joined(separator: " ") + " " + shellQuoted(executable)]
        return arguments
    }
}

func shellQuoted(_ text: String) -> String {
    if !text.isEmpty, text.allSatisfy({ $0.isLetter || $0.isNumber || "/._-=:,@+".contains($0) }) { return text }
    return "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

extension SlurmPlacement {
    /// The agents it starts and the command that starts them.
    func command(executable: String, options: ClusterOptions, logDirectory: String) -> (agents: Int, slotsPerAgent: Int, arguments: [String]) {
        let lead = max(Int(options.drainLead.saturatingNanoseconds / 1_000_000_000), 1)
        switch self {
        case .steps(let nodes, let cpusPerNode, let agentsPerNode):
            let perAgent = max(cpusPerNode / max(agentsPerNode, 1), 1)
            let tasks = nodes * agentsPerNode
            return (tasks, perAgent, [
                "srun", "--no-kill", "--kill-on-bad-exit=0", "--nodes=\(nodes)", "--ntasks=\(tasks)",
                "--ntasks-per-node=\(agentsPerNode)", "--cpus-per-task=\(perAgent)", "--signal=USR1@\(lead)",
                "--job-name=workers-agents", "--quiet", executable,
            ])
        case .submit(let agents, let cpusPerAgent, let time, let partition, let extra):
            var arguments = [
                "sbatch", "--parsable", "--array=0-\(agents - 1)", "--ntasks=1", "--cpus-per-task=\(cpusPerAgent)", "--time=\(time)",
                "--signal=B:USR1@\(lead)", "--job-name=workers-agents", "--output=\(logDirectory)/agent-%A_%a.log", "--export=ALL",
            ]
            if let partition { arguments.append("--partition=\(partition)") }
            arguments += extra
            arguments += ["--wrap", "exec " + shellQuoted(executable)]
            return (agents, cpusPerAgent, arguments)
        }
    }
}

extension Placement {
    /// Agents started by any launcher — by hand, Kubernetes Indexed Jobs, `mpirun`, PBS: the
    /// pool prints (to `announce`, default standard error) the command to run on each node,
    /// `workers worker --connect HOST:PORT --key-file F` or this program with
    /// `WORKERS_CONNECT` and `WORKERS_KEY_FILE` set, and waits for `expect` agents.
    public static func external(
        listen: ListenAddress = .auto, expect: Int, options: ClusterOptions = ClusterOptions(),
        announce: @escaping @Sendable (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
    ) -> Placement {
        precondition(expect >= 1, "expect must be at least 1 (got \(expect))")
        var configured = options
        configured.listen = listen
        let options = configured
        return Placement { context in
            try await ClusterPlacementDriver.start(context, options: options, kind: .external(expect: expect, announce: announce))
        }
    }

    /// Agents on a Slurm cluster: steps inside an allocation, or pilot jobs from a login node.
    /// Slurm places and confines them; the pool only runs the link.
    public static func slurm(_ mode: SlurmPlacement, options: ClusterOptions = ClusterOptions()) -> Placement {
        Placement { context in
            try await ClusterPlacementDriver.start(context, options: options, kind: .slurm(mode))
        }
    }

    /// Agents on SSH hosts, in GNU parallel's sshlogin syntax (`8/alice@node1:2222`): one ssh
    /// connection per host carries its agent's link, so no port needs to be open on the driver
    /// and no key file needs to be shared: the key travels inside ssh's encrypted channel.
    public static func ssh(hosts: [String], options: ClusterOptions = ClusterOptions()) throws(ClusterError) -> Placement {
        precondition(!hosts.isEmpty, "hosts must not be empty")
        var logins: [SSHLogin] = []
        for host in hosts { logins.append(try SSHLogin(host)) }
        let parsed = logins
        return Placement { context in
            try await ClusterPlacementDriver.start(context, options: options, kind: .ssh(parsed))
        }
    }
}

/// A started placement beyond this machine: its hub, what it launched, and its key file.
final class ClusterPlacementDriver: PlacementDriver, @unchecked Sendable {  // @unchecked: `lock` guards `ended`.
    enum Kind: Sendable {
        case external(expect: Int, announce: @Sendable (String) -> Void)
        case slurm(SlurmPlacement)
        case ssh([SSHLogin])
    }

    let hub: ClusterHub
    let slots: Int
    let prefetch: Int
    let launcher: any WorkerLauncher
    private let commands: [LaunchedCommand]
    private let slurmJobs: [String]
    private let keyPath: String?
    private let lock = PthreadLock()
    private var ended = false

    private init(hub: ClusterHub, slots: Int, prefetch: Int, timeout: Duration, commands: [LaunchedCommand], slurmJobs: [String], keyPath: String?) {
        self.hub = hub
        self.slots = slots
        self.prefetch = prefetch
        launcher = RemoteLauncher(hub: hub, timeout: timeout)
        self.commands = commands
        self.slurmJobs = slurmJobs
        self.keyPath = keyPath
    }

    var agents: [ProcessPool.AgentInfo] { hub.agents }

    func shutdownBegan() {
        hub.stopWaiting(after: .seconds(1))
    }

    static func start(_ context: PlacementContext, options: ClusterOptions, kind: Kind) async throws -> ClusterPlacementDriver {
        let key = PoolKey.generate()
        let build = options.checksBuild ? try NodeAgent.digest(ofFile: context.executable) : nil
        let hub = ClusterHub(configuration: ClusterHub.Configuration(
            key: key, jobSet: NodeAgent.jobSetDigest(context.jobSignatures), build: build,
            heartbeat: context.heartbeat, logger: context.logger, metrics: context.metrics
        ))
        var commands: [LaunchedCommand] = []
        var slurmJobs: [String] = []
        var keyPath: String?
        var endpoint = "ssh"
        let expected: Int
        var launchText = ""
        do {
            switch kind {
            case .ssh(let logins):
                expected = logins.count
                for login in logins {
                    let arguments = login.command(ssh: options.ssh, executable: context.executable, environment: options.environment)
                    launchText = arguments.joined(separator: " ")
                    commands.append(try startSSH(arguments, key: key, hub: hub, login: login))
                }
            case .external(let count, let announce):
                expected = count
                let (path, port, advertised) = try listen(hub, key: key, options: options)
                keyPath = path
                endpoint = "\(advertised):\(port)"
                launchText = "workers worker --connect \(endpoint) --key-file \(path)"
                announce("""
                    swift-workers: waiting for \(count) agent\(count == 1 ? "" : "s"). On each node run
                      workers worker --connect \(endpoint) --key-file \(path)
                    (add --slots N for other than one worker per CPU), or this program with
                      \(NodeAgentEntry.connectVariable)=\(endpoint) \(PoolKey.fileVariable)=\(path) \(context.executable)
                    """)
            case .slurm(let mode):
                let (path, port, advertised) = try listen(hub, key: key, options: options)
                keyPath = path
                endpoint = "\(advertised):\(port)"
                let directory = String(path[..<path.lastIndex(of: "/")!])
                let plan = mode.command(executable: context.executable, options: options, logDirectory: directory)
                expected = plan.agents
                launchText = plan.arguments.joined(separator: " ")
                var environment = options.environment
                environment[NodeAgentEntry.connectVariable] = endpoint
                environment[PoolKey.fileVariable] = path
                environment[NodeAgent.slotsVariable] = String(plan.slotsPerAgent)
                environment[NodeAgent.connectTimeoutVariable] = String(Double(options.connectTimeout.saturatingNanoseconds) / 1e9)
                if case .submit = mode {
                    let arguments = plan.arguments
                    let submitted = environment
                    let (status, output) = try await onThread {
                        Result { () throws(ClusterError) in try LaunchedCommand.run(arguments, environment: submitted, logPath: directory + "/launch.log") }
                    }.get()
                    let job = output.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
                    guard status == 0, !job.isEmpty else {
                        throw ProcessPoolError(.placementFailed("sbatch failed (\(WaitStatus(raw: status))): \(LaunchedCommand.tailOf(directory + "/launch.log"))"))
                    }
                    slurmJobs.append(job)
                } else {
                    commands.append(try LaunchedCommand.start(plan.arguments, environment: environment, logPath: directory + "/launch.log"))
                }
            }
        } catch {
            await abandon(hub: hub, commands: commands, slurmJobs: slurmJobs, keyPath: keyPath)
            throw error as? ProcessPoolError ?? ProcessPoolError(.placementFailed("\(error)"))
        }
        let deadline = ContinuousClock.now.advanced(by: options.connectTimeout)
        let launched = commands
        let joined = await onThread {
            // A launcher that ended before its agents joined will bring none.
            hub.waitForAgents(expected, until: deadline) { launched.contains { $0.exited != nil } }
        }
        guard joined >= expected else {
            var detail = "\(joined) of \(expected) agents connected to \(endpoint) within \(options.connectTimeout)"
            if let refusal = hub.refused.last { detail += "; refused: \(refusal)" }
            for command in commands {
                if let status = command.exited {
                    detail += "; `\(command.arguments.prefix(3).joined(separator: " "))…` ended (\(WaitStatus(raw: status)))"
                    let tail = command.logTail
                    if !tail.isEmpty { detail += ": \(tail)" }
                }
            }
            detail += "; launched with: \(launchText)"
            await abandon(hub: hub, commands: commands, slurmJobs: slurmJobs, keyPath: keyPath)
            throw ProcessPoolError(.placementFailed(detail))
        }
        context.logger.info("agents connected", metadata: ["agents": "\(joined)", "slots": "\(hub.slotCount)", "endpoint": "\(endpoint)"])
        return ClusterPlacementDriver(
            hub: hub, slots: hub.slotCount, prefetch: max(0, options.prefetchPerSlot), timeout: options.connectTimeout,
            commands: commands, slurmJobs: slurmJobs, keyPath: keyPath
        )
    }

    private static func listen(_ hub: ClusterHub, key: PoolKey, options: ClusterOptions) throws(ClusterError) -> (keyPath: String, port: UInt16, advertised: String) {
        let (bindAddress, advertised) = try options.listen.resolve()
        let port = try hub.listen(host: bindAddress, port: options.listen.port)
        let path = try key.writeToNewDirectory(under: options.keyDirectory)
        return (path, port, advertised)
    }

    private static func startSSH(_ arguments: [String], key: PoolKey, hub: ClusterHub, login: SSHLogin) throws(ClusterError) -> LaunchedCommand {
        var toSSH: [Int32] = [0, 0]
        var fromSSH: [Int32] = [0, 0]
        guard toSSH.withUnsafeMutableBufferPointer({ cworkers_pipe_cloexec($0.baseAddress!) }) == 0,
              fromSSH.withUnsafeMutableBufferPointer({ cworkers_pipe_cloexec($0.baseAddress!) }) == 0 else {
            throw ClusterError(.launchFailed, "pipe: \(String(cString: strerror(errno)))")
        }
        let command: LaunchedCommand
        do {
            command = try LaunchedCommand.start(arguments, environment: [:], stdin: toSSH[0], stdout: fromSSH[1])
        } catch {
            for descriptor in toSSH + fromSSH { close(descriptor) }
            throw error
        }
        close(toSSH[0])
        close(fromSSH[1])
        let line = Array((key.hex + "\n").utf8)
        _ = line.withUnsafeBytes { write(toSSH[1], $0.baseAddress, $0.count) }
        let input = fromSSH[0]
        let output = toSSH[1]
        Thread.detachNewThread {
            hub.adopt(input: input, output: output, address: login.destination, launch: "ssh \(login.destination)", onEnd: { command.end(grace: .seconds(1)) })
        }
        return command
    }

    private static func abandon(hub: ClusterHub, commands: [LaunchedCommand], slurmJobs: [String], keyPath: String?) async {
        await onThread {
            hub.shutdown(grace: .milliseconds(500))
            for command in commands { command.end(grace: .milliseconds(500)) }
            if !slurmJobs.isEmpty { _ = try? LaunchedCommand.run(["scancel"] + slurmJobs) }
            if let keyPath { PoolKey.remove(file: keyPath) }
        }
    }

    func shutdown() async {
        let first: Bool = lock.withLock {
            defer { ended = true }
            return !ended
        }
        guard first else { return }
        await Self.abandon(hub: hub, commands: commands, slurmJobs: slurmJobs, keyPath: keyPath)
    }
}

/// Runs `body`, which blocks (waits for agents, launchers, links), on a thread of its own: never
/// on Swift's cooperative threads, which are as few as the CPUs.
func onThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        Thread.detachNewThread { continuation.resume(returning: body()) }
    }
}

extension LaunchedCommand {
    static func tailOf(_ path: String) -> String {
        guard let data = FileManager.default.contents(atPath: path) else { return "" }
        return String(decoding: data.suffix(600), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
