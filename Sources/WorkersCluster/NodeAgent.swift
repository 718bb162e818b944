#if canImport(Glibc)
import Glibc
#endif
import CWorkersShims
import Crypto
import Foundation
import WorkersCore
import WorkersProcesses
import WorkersWire

/// A node agent: one process per node (or per SSH host, or per launcher task) that dials the
/// driver, proves it holds the pool key, and then runs a local pool of worker processes — this
/// same program in worker mode — behind that one link, one worker per slot the driver opens.
///
/// A crash, a time-out or a memory limit costs one worker on the node, as in a local pool. The
/// agent drains on `SIGTERM`, `SIGUSR1` (what `sbatch --signal=USR1@grace` and
/// `scancel --signal=TERM` send) or the driver's drain: each slot finishes its batch and closes,
/// and the batches it had not started go elsewhere without counting an attempt. It exits when its
/// driver says goodbye, closes the link, or falls silent for the link's `lostAfter`, and kills its
/// workers as it goes: nothing of the pool outlives its driver on a node.
public enum NodeAgent {
    /// Where an agent finds its driver, and what it offers.
    public struct Options: Sendable {
        /// `HOST:PORT` of the driver's listener, or `nil` for a link on standard input and
        /// output (an SSH placement; the key is then the first line of the input).
        public var connect: (host: String, port: UInt16)?
        /// Worker slots; default the CPUs this process may use.
        public var slots: Int
        /// The key; `nil`: from `WORKERS_KEY_FILE` or `WORKERS_KEY` (or, on standard input, its
        /// first line).
        public var key: PoolKey?
        /// How long to keep trying to connect and shake hands.
        public var connectTimeout: Duration
        /// How the agent was started, for the driver's reports.
        public var launch: String

        /// Options with the defaults above.
        public init(connect: (host: String, port: UInt16)?, slots: Int = cpuCount, key: PoolKey? = nil, connectTimeout: Duration = .seconds(30), launch: String = NodeAgent.launchDescription) {
            self.connect = connect
            self.slots = slots
            self.key = key
            self.connectTimeout = connectTimeout
            self.launch = launch
        }
    }

    static let slotsVariable = "WORKERS_SLOTS"
    static let connectTimeoutVariable = "WORKERS_CONNECT_TIMEOUT"
    static let launchVariable = "WORKERS_LAUNCH"
    /// Never passed on to workers.
    static let agentVariables = [NodeAgentEntry.connectVariable, PoolKey.fileVariable, PoolKey.environmentVariable, slotsVariable, connectTimeoutVariable, launchVariable]

    /// How this process was started: Slurm's job, step and task if it runs under Slurm, else
    /// `WORKERS_LAUNCH`, else `external`.
    public static var launchDescription: String {
        func variable(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }
        if let job = variable("SLURM_JOB_ID") {
            var text = "slurm job \(job)"
            if let array = variable("SLURM_ARRAY_TASK_ID") { text += " array task \(array)" }
            if let step = variable("SLURM_STEP_ID") { text += " step \(step)" }
            if let task = variable("SLURM_PROCID") { text += " task \(task)" }
            return text
        }
        return variable(launchVariable) ?? "external"
    }

    /// The options an agent's environment gives: `WORKERS_CONNECT` (`HOST:PORT` or `stdio`),
    /// `WORKERS_SLOTS`, `WORKERS_CONNECT_TIMEOUT` (seconds), `WORKERS_LAUNCH`.
    public static func optionsFromEnvironment() throws(ClusterError) -> Options {
        func variable(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }
        let target = variable(NodeAgentEntry.connectVariable) ?? ""
        var options = Options(connect: nil)
        if target != "stdio" { options.connect = try parseEndpoint(target) }
        if let text = variable(slotsVariable) {
            guard let slots = Int(text), slots >= 1 else {
                throw ClusterError(.protocolViolation, "\(slotsVariable)=\(text): a number of slots, at least 1")
            }
            options.slots = slots
        }
        if let text = variable(connectTimeoutVariable), let seconds = Double(text), seconds > 0 {
            options.connectTimeout = .milliseconds(Int64(seconds * 1000))
        }
        return options
    }

    /// `HOST:PORT`.
    public static func parseEndpoint(_ text: String) throws(ClusterError) -> (host: String, port: UInt16) {
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]), port > 0 else {
            throw ClusterError(.connectFailed, "\"\(text)\" is not HOST:PORT")
        }
        return (String(text[..<colon]), port)
    }

    /// Runs an agent for a program whose jobs are `jobs`; returns its exit status: 0 after the
    /// driver's goodbye or a drain, 69 if it could not connect or was refused, 75 when the driver
    /// was lost.
    ///
    /// ## Cancellation
    /// Not cancellable: it runs until its driver lets it go, or a signal drains it.
    public static func run(jobs: [any Job.Type], options: Options) -> Int32 {
        let signatures = jobs.map { $0.wireSignature }.sorted()
        do throws(ClusterError) {
            let agent = try Agent.connect(jobSet: jobSetDigest(signatures), options: options)
            return agent.serve()
        } catch {
            FileHandle.standardError.write(Data("workers agent on \(hostName): \(error)\n".utf8))
            return 69
        }
    }

    static var hostName: String { WorkersCore.hostName }

    /// The SHA-256 of sorted job signatures, hex.
    static func jobSetDigest(_ signatures: [String]) -> String {
        hexString(SHA256.hash(data: Array(signatures.joined(separator: "\n").utf8)))
    }

    /// The SHA-256 of this program's executable, hex (empty if it cannot be read); computed once.
    static let buildDigest: String = (try? digest(ofFile: "/proc/self/exe")) ?? ""

    /// The SHA-256 of a file, hex, read a MiB at a time.
    static func digest(ofFile path: String) throws(ClusterError) -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw ClusterError(.launchFailed, "cannot read the executable \(path)")
        }
        defer { try? handle.close() }
        var hash = SHA256()
        while let chunk = try? handle.read(upToCount: 1 << 20), !chunk.isEmpty { hash.update(data: chunk) }
        return hexString(hash.finalize())
    }
}

extension NodeAgentEntry {
    /// The cluster's node agent: pass it to ``WorkerProcess/runIfWorker(jobs:agent:)`` so this
    /// program can be started as an agent by `srun`, `sbatch`, `ssh` or any launcher.
    public static var cluster: NodeAgentEntry {
        NodeAgentEntry { jobs in
            do throws(ClusterError) {
                return NodeAgent.run(jobs: jobs, options: try NodeAgent.optionsFromEnvironment())
            } catch {
                FileHandle.standardError.write(Data("workers agent: \(error)\n".utf8))
                return 64
            }
        }
    }
}

/// A connected, authenticated agent and its workers.
final class Agent: Relay.Handler, @unchecked Sendable {  // @unchecked: used on its loop thread only.
    let relay: Relay
    private let launcher: ChildProcessLauncher
    private var workers: [UInt32: ChildProcessLink] = [:]
    private var exitStatus: Int32 = 0
    private var drainingSince: UInt64?
    private var finished = false

    private init(relay: Relay, executable: String) {
        self.relay = relay
        launcher = ChildProcessLauncher(executable: executable, withheldVariables: NodeAgent.agentVariables, addedVariables: [WorkerProcess.underAgentVariable: "1"])
    }

    static func connect(jobSet: String, options: NodeAgent.Options) throws(ClusterError) -> Agent {
        cworkers_ignore_sigpipe()
        let deadline = monotonicNanoseconds() + UInt64(options.connectTimeout.saturatingNanoseconds)
        let input: Int32
        let output: Int32
        var key = options.key
        if let (host, port) = options.connect {
            if key == nil { key = try PoolKey.fromAgentEnvironment() }
            let descriptor = try dial(host: host, port: port, until: deadline)
            (input, output) = (descriptor, descriptor)
        } else {
            // The link is stdin and stdout: keep them for it, and give the program (and the
            // workers) /dev/null and stderr instead, so no stray print reaches the link.
            input = dup(0)
            output = dup(1)
            _ = fcntl(input, F_SETFD, FD_CLOEXEC)
            _ = fcntl(output, F_SETFD, FD_CLOEXEC)
            let null = open("/dev/null", O_RDONLY)
            dup2(null, 0)
            close(null)
            dup2(2, 1)
            if key == nil {
                if let fromEnvironment = try? PoolKey.fromAgentEnvironment() {
                    key = fromEnvironment
                } else {
                    key = try readKeyLine(input, until: deadline)
                }
            }
        }
        guard let key else { throw ClusterError(.keyFile, "no pool key") }
        let connect = ConnectMessage(
            nonce: LinkAuthentication.randomBytes(LinkProtocol.nonceSize), host: NodeAgent.hostName, processID: getpid(),
            slots: options.slots, build: NodeAgent.buildDigest, jobSet: jobSet, launch: options.launch
        )
        _ = cworkers_set_nonblocking(input)
        _ = cworkers_set_nonblocking(output)
        let handshakeDeadline = min(deadline, monotonicNanoseconds() + 10_000_000_000)
        let (accept, link) = try LinkAuthentication.connectToDriver(
            input: input, output: output, key: key, connect: connect, deadline: handshakeDeadline, maxFrameSize: WireProtocol.defaultMaxFrameSize
        )
        let heartbeat = Heartbeat(
            interval: .milliseconds(max(accept.heartbeatMilliseconds, 1)),
            lostAfter: .milliseconds(max(accept.lostAfterMilliseconds, accept.heartbeatMilliseconds + 1, 2))
        )
        let relay = Relay(input: input, output: output, link: link, heartbeat: heartbeat, scansFrames: true)
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let agent = Agent(relay: relay, executable: executable)
        relay.handler = agent
        return agent
    }

    /// The key as the first line of the link (an SSH placement writes it there, inside ssh's
    /// encrypted channel).
    private static func readKeyLine(_ descriptor: Int32, until deadline: UInt64) throws(ClusterError) -> PoolKey {
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while line.count < 80 {
            let count = retryingInterrupts { read(descriptor, &byte, 1) }
            if count == 1 {
                if byte == 0x0A { return try PoolKey(hex: String(decoding: line, as: UTF8.self)) }
                line.append(byte)
            } else {
                throw ClusterError(.keyFile, "no key line on standard input")
            }
        }
        throw ClusterError(.keyFile, "the first line of standard input is not a key")
    }

    /// Connects to `host:port`, retrying a refused connection until the deadline.
    static func dial(host: String, port: UInt16, until deadline: UInt64) throws(ClusterError) -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_INET
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let first = list else {
            throw ClusterError(.connectFailed, "cannot resolve \(host) from \(NodeAgent.hostName): \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(list) }
        var lastError = "timed out"
        while true {
            let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            guard descriptor >= 0 else { throw ClusterError(.connectFailed, "socket: \(String(cString: strerror(errno)))") }
            var result = Glibc.connect(descriptor, first.pointee.ai_addr, first.pointee.ai_addrlen)
            if result != 0 && errno == EINPROGRESS {
                if LinkIO.wait(descriptor, events: Int16(POLLOUT), until: deadline) {
                    var error: Int32 = 0
                    var length = socklen_t(MemoryLayout<Int32>.size)
                    getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &error, &length)
                    result = error == 0 ? 0 : -1
                    errno = error
                } else {
                    errno = ETIMEDOUT
                }
            }
            if result == 0 {
                var noDelay: Int32 = 1
                setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &noDelay, socklen_t(MemoryLayout<Int32>.size))
                return descriptor
            }
            lastError = String(cString: strerror(errno))
            close(descriptor)
            let now = monotonicNanoseconds()
            guard now + 100_000_000 < deadline, errno == ECONNREFUSED || errno == ENETUNREACH || errno == EHOSTUNREACH else { break }
            usleep(100_000)
        }
        throw ClusterError(.connectFailed, "cannot connect to \(host):\(port) from \(NodeAgent.hostName): \(lastError)")
    }

    /// Serves the link until the driver lets go; returns the exit status.
    func serve() -> Int32 {
        _ = cworkers_set_thread_name("workers-agent")
        _ = cworkers_drain_signals_to_eventfd(relay.wake)
        relay.run()
        for (_, worker) in workers { worker.terminate() }
        workers.removeAll()
        return exitStatus
    }

    private func end(_ status: Int32) {
        guard !finished else { return }
        finished = true
        exitStatus = status
        for (channel, worker) in workers {
            relay.removeChannel(channel)
            worker.terminate()
        }
        workers.removeAll()
        relay.flush(until: monotonicNanoseconds() + 200_000_000)
        relay.stop()
    }

    // MARK: Draining

    private func drain(_ reason: String) {
        guard drainingSince == nil else { return }
        drainingSince = monotonicNanoseconds()
        relay.draining = true
        relay.send(.retire, payload: Array(reason.utf8))
        for channel in Array(workers.keys) where relay.isIdle(channel) { retire(channel) }
        if workers.isEmpty { end(0) }
    }

    /// Closes an idle slot of a draining agent.
    private func retire(_ channel: UInt32) {
        guard let worker = workers.removeValue(forKey: channel) else { return }
        relay.removeChannel(channel)
        worker.terminate()
        relay.send(.closed, channel: channel, message: ChannelClosed(retired: true))
        if workers.isEmpty { end(0) }
    }

    // MARK: Relay.Handler

    func relay(_ relay: Relay, received frame: LinkFrame) {
        switch frame.kind {
        case .open:
            guard drainingSince == nil else {
                relay.send(.closed, channel: frame.channel, message: ChannelClosed(retired: true))
                return
            }
            if let old = workers.removeValue(forKey: frame.channel) {
                relay.removeChannel(frame.channel)
                old.terminate()
            }
            do throws(ProcessPoolError) {
                guard let worker = try launcher.launch(slot: Int(frame.channel)) as? ChildProcessLink else { return }
                workers[frame.channel] = worker
                relay.addChannel(frame.channel, read: worker.inputDescriptor, write: worker.outputDescriptor)
            } catch {
                var closed = ChannelClosed()
                if case .spawnFailed(let number) = error.code { closed.spawnErrno = number } else { closed.spawnErrno = EIO }
                relay.send(.closed, channel: frame.channel, message: closed)
            }
        case .closed:
            guard let worker = workers.removeValue(forKey: frame.channel) else {
                relay.send(.closed, channel: frame.channel, message: ChannelClosed(signal: SIGKILL))
                return
            }
            relay.removeChannel(frame.channel)
            relay.send(.closed, channel: frame.channel, message: closedMessage(worker.terminate()))
            if drainingSince != nil && workers.isEmpty { end(0) }
        case .drain:
            drain("the driver asked")
        case .goodbye:
            end(0)
        case .heartbeat, .data, .connect, .challenge, .proof, .accept, .reject, .retire:
            return
        }
    }

    func relay(_ relay: Relay, channelEnded channel: UInt32) {
        guard let worker = workers.removeValue(forKey: channel) else {
            relay.removeChannel(channel)
            return
        }
        relay.removeChannel(channel)
        relay.send(.closed, channel: channel, message: closedMessage(worker.reap()))
        if drainingSince != nil && workers.isEmpty { end(0) }
    }

    func relay(_ relay: Relay, idleWhileDraining channel: UInt32) {
        retire(channel)
    }

    func relay(_ relay: Relay, linkEnded error: ClusterError) {
        FileHandle.standardError.write(Data("workers agent on \(NodeAgent.hostName): the driver is gone (\(error.detail)); stopping its workers\n".utf8))
        end(drainingSince == nil ? 75 : 0)
    }

    func relayTick(_ relay: Relay) {
        var beat = AgentHeartbeat()
        for (channel, worker) in workers {
            beat.channels.append(channel)
            beat.residentBytes.append(worker.residentBytes() ?? 0)
        }
        relay.send(.heartbeat, message: beat)
    }

    func relayWoke(_ relay: Relay) {
        let signal = cworkers_take_drain_signal()
        guard signal != 0 else { return }
        drain(signal == SIGUSR1 ? "SIGUSR1 (a walltime warning)" : signal == SIGTERM ? "SIGTERM" : "signal \(signal)")
    }

    private func closedMessage(_ code: ProcessPoolError.Code) -> ChannelClosed {
        var closed = ChannelClosed()
        if case .workerCrashed(let signal, let exitCode) = code {
            closed.signal = signal ?? -1
            closed.exitCode = exitCode ?? -1
        }
        return closed
    }
}
