#if canImport(Glibc)
import Glibc
#endif
import CWorkersShims
import DequeModule
import Foundation
import Logging
import WorkersCore
import WorkersProcesses
import WorkersWire

/// The driver's side of a placement beyond this machine: the listener, one authenticated link
/// per agent, the agents' free worker slots, and the launcher a ``ProcessPool`` starts workers
/// with. A worker's link is a socket pair whose other end this hub relays over its agent's link.
final class ClusterHub: @unchecked Sendable {  // @unchecked: `lock` guards the mutable state.
    struct Configuration: Sendable {
        var key: PoolKey
        var jobSet: String
        /// The driver's build digest, or `nil` to accept any build.
        var build: String?
        var heartbeat: Heartbeat
        var handshakeTimeout: Duration = .seconds(5)
        var maxFrameSize = WireProtocol.defaultMaxFrameSize
        var logger: Logger
        var metrics: ProcessPoolMetrics?
    }

    let configuration: Configuration
    private let lock = PthreadLock()
    private let changed: PthreadCondition
    private var sessions: [AgentSession] = []
    private var free: Deque<(session: AgentSession, channel: UInt32)> = []
    private var rejections: [(error: ClusterError, after: Duration)] = []
    private var closed = false
    private var waitingEnds: ContinuousClock.Instant?
    private var listener: Int32 = -1

    init(configuration: Configuration) {
        self.configuration = configuration
        changed = PthreadCondition(lock: lock)
    }

    var logger: Logger { configuration.logger }

    // MARK: Agents joining

    /// Listens on `host:port` (port 0: any free one) and accepts agents on a thread of its own.
    /// Returns the port.
    func listen(host: String, port: UInt16) throws(ClusterError) -> UInt16 {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw ClusterError(.connectFailed, "socket: \(String(cString: strerror(errno)))") }
        var yes: Int32 = 1
        setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = try SocketAddress.ipv4(host, port: port)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, Glibc.listen(descriptor, 256) == 0 else {
            let text = String(cString: strerror(errno))
            close(descriptor)
            throw ClusterError(.connectFailed, "cannot listen on \(host):\(port): \(text)")
        }
        var local = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        lock.withLock { listener = descriptor }
        Thread.detachNewThread { [self] in acceptLoop(descriptor) }
        return UInt16(bigEndian: local.sin_port)
    }

    private func acceptLoop(_ descriptor: Int32) {
        _ = cworkers_set_thread_name("workers-listen")
        while true {
            var peer = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let connection = withUnsafeMutablePointer(to: &peer) { peer in
                peer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in retryingInterrupts { accept(descriptor, address, &length) } }
            }
            if connection >= 0 { _ = fcntl(connection, F_SETFD, FD_CLOEXEC) }
            if connection < 0 {
                if errno == ECONNABORTED || errno == EMFILE { continue }
                return  // the listener was shut down
            }
            if lock.withLock({ closed }) {
                close(connection)
                return
            }
            var noDelay: Int32 = 1
            setsockopt(connection, Int32(IPPROTO_TCP), TCP_NODELAY, &noDelay, socklen_t(MemoryLayout<Int32>.size))
            let address = SocketAddress.describe(peer)
            let accepted = ContinuousClock.now
            Thread.detachNewThread { [self] in
                adopt(input: connection, output: connection, address: address, launch: nil, accepted: accepted, onEnd: nil)
            }
        }
    }

    /// Runs the handshake on a new link and, if the agent passes, serves it on this thread
    /// until the link ends. `launch` overrides the agent's own description (an SSH host);
    /// `onEnd` runs when the link is over (to reap an ssh process).
    func adopt(input: Int32, output: Int32, address: String, launch: String?, accepted: ContinuousClock.Instant = .now, onEnd: (@Sendable () -> Void)?) {
        _ = cworkers_set_thread_name("workers-agent")
        let deadline = monotonicNanoseconds() + UInt64(configuration.handshakeTimeout.saturatingNanoseconds)
        _ = cworkers_set_nonblocking(input)
        _ = cworkers_set_nonblocking(output)
        let accept = AcceptMessage(
            heartbeatMilliseconds: configuration.heartbeat.intervalMilliseconds,
            lostAfterMilliseconds: configuration.heartbeat.lostAfterMilliseconds
        )
        let connect: ConnectMessage
        let link: AuthenticatedLink
        do throws(ClusterError) {
            (connect, link) = try LinkAuthentication.acceptAgent(
                input: input, output: output, key: configuration.key, jobSet: configuration.jobSet,
                build: configuration.build, accept: accept, deadline: deadline, maxFrameSize: configuration.maxFrameSize
            )
        } catch {
            logger.warning("agent refused", metadata: ["address": "\(address)", "error": "\(error)"])
            configuration.metrics?.agentEvent("refused")
            lock.withLock {
                rejections.append((error, accepted.duration(to: .now)))
                changed.broadcast()
            }
            close(input)
            if output != input { close(output) }
            onEnd?()
            return
        }
        let relay = Relay(input: input, output: output, link: link, heartbeat: configuration.heartbeat, scansFrames: true)
        let session = AgentSession(hub: self, relay: relay, connect: connect, address: address, launch: launch ?? connect.launch)
        relay.handler = session
        let accepted: Bool = lock.withLock {
            guard !closed else { return false }
            sessions.append(session)
            for channel in 0..<UInt32(max(connect.slots, 0)) { free.append((session, channel)) }
            changed.broadcast()
            return true
        }
        guard accepted else {
            relay.send(.goodbye)
            relay.flush(until: monotonicNanoseconds() + 100_000_000)
            close(input)
            if output != input { close(output) }
            onEnd?()
            return
        }
        configuration.metrics?.agentEvent("joined")
        logger.info("agent joined", metadata: ["host": "\(connect.host)", "address": "\(address)", "slots": "\(connect.slots)", "launch": "\(session.launch)"])
        relay.run()
        session.finish()
        close(input)
        if output != input { close(output) }
        onEnd?()
    }

    /// Waits until `count` agents have joined, the deadline passes, or `failed()` says a launch
    /// failed. Returns how many joined.
    func waitForAgents(_ count: Int, until deadline: ContinuousClock.Instant, failed: () -> Bool = { false }) -> Int {
        lock.withLock {
            while sessions.count < count && !closed && !failed() {
                let remaining = ContinuousClock.now.duration(to: deadline)
                guard remaining > .zero else { break }
                _ = changed.wait(nanoseconds: min(remaining, .milliseconds(50)).saturatingNanoseconds)
            }
            return sessions.count
        }
    }

    /// Waits until `count` agents have been refused or the deadline passes; returns the refusals.
    func waitForRefusals(_ count: Int, until deadline: ContinuousClock.Instant) -> [ClusterError] {
        lock.withLock {
            while rejections.count < count {
                let remaining = ContinuousClock.now.duration(to: deadline)
                guard remaining > .zero else { break }
                _ = changed.wait(nanoseconds: remaining.saturatingNanoseconds)
            }
            return rejections.map(\.error)
        }
    }

    /// Whether the hub is shutting down (a link that ends now was let go).
    var isClosed: Bool { lock.withLock { closed } }

    /// Agents refused so far, with why.
    var refused: [ClusterError] { lock.withLock { rejections.map(\.error) } }

    /// For each refused agent, the time from accepting its connection to refusing it.
    var refusalDelays: [Duration] { lock.withLock { rejections.map(\.after) } }

    /// Worker slots across the agents that have joined.
    var slotCount: Int { lock.withLock { sessions.reduce(0) { $0 + max($1.connect.slots, 0) } } }

    // MARK: Slots

    /// A free slot of some connected agent, waiting up to `timeout`; `nil` if none came or the
    /// hub closed. Slots are handed out in the order they became free.
    func acquireSlot(timeout: Duration) -> (session: AgentSession, channel: UInt32)? {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        return lock.withLock {
            while !closed {
                if let first = free.popFirst() { return first }
                let end = min(deadline, waitingEnds ?? deadline)
                let remaining = ContinuousClock.now.duration(to: end)
                guard remaining > .zero else { return nil }
                _ = changed.wait(nanoseconds: remaining.saturatingNanoseconds)
            }
            return nil
        }
    }

    /// The pool is shutting down: a slot waits at most `grace` more for an agent's free slot
    /// (one whose worker is ending comes back at once; a lost agent's never does).
    func stopWaiting(after grace: Duration) {
        lock.withLock {
            waitingEnds = ContinuousClock.now.advanced(by: grace)
            changed.broadcast()
        }
    }

    /// A slot whose worker ended is free again.
    func offer(_ session: AgentSession, _ channel: UInt32) {
        lock.withLock {
            guard !closed else { return }
            free.append((session, channel))
            changed.signal()
        }
    }

    /// The agent is gone or draining: its slots are not offered any more.
    func withdraw(_ session: AgentSession) {
        lock.withLock {
            free.removeAll { $0.session === session }
            changed.broadcast()
        }
    }

    var agents: [ProcessPool.AgentInfo] {
        lock.withLock { sessions }.map { $0.info }
    }

    // MARK: Ending

    /// Tells every agent goodbye, waits up to `grace` for their links to end, and closes the
    /// listener. Slots still waiting for an agent give up.
    func shutdown(grace: Duration) {
        let (all, descriptor): ([AgentSession], Int32) = lock.withLock {
            closed = true
            free.removeAll()
            changed.broadcast()
            defer { listener = -1 }
            return (sessions, listener)
        }
        if descriptor >= 0 {
            Glibc.shutdown(descriptor, Int32(SHUT_RDWR))
            close(descriptor)
        }
        for session in all { session.relay.send(.goodbye) }
        let deadline = monotonicNanoseconds() + UInt64(grace.saturatingNanoseconds)
        for session in all { session.waitFinished(until: deadline) }
        for session in all { session.relay.post { session.relay.stop() } }
        for session in all { session.waitFinished(until: monotonicNanoseconds() + 200_000_000) }
    }
}

/// One agent's link on the driver, served on its own thread by a ``Relay``.
final class AgentSession: Relay.Handler, @unchecked Sendable {  // @unchecked: the loop thread's state, and `lock` for reports.
    unowned let hub: ClusterHub
    let relay: Relay
    let connect: ConnectMessage
    let address: String
    let launch: String
    /// The links of the workers running in this agent's slots (loop thread).
    private var links: [UInt32: RemoteLinkState] = [:]
    private let lock = PthreadLock()
    private let ended: PthreadCondition
    private var isFinished = false
    private var retiring = false
    private var batchesDone = 0
    private var losses = 0

    init(hub: ClusterHub, relay: Relay, connect: ConnectMessage, address: String, launch: String) {
        self.hub = hub
        self.relay = relay
        self.connect = connect
        self.address = address
        self.launch = launch
        ended = PthreadCondition(lock: lock)
    }

    var info: ProcessPool.AgentInfo {
        let age = monotonicNanoseconds() &- relay.lastFrameAt
        return lock.withLock {
            ProcessPool.AgentInfo(
                host: connect.host, address: address, launch: launch, slots: connect.slots, isConnected: !isFinished,
                heartbeatAge: .nanoseconds(Int64(min(age, UInt64(Int64.max)))), batchesDone: batchesDone, losses: losses
            )
        }
    }

    /// Starts a worker in `channel`: the returned link's descriptor is one end of a socket pair
    /// whose other end this session relays.
    func open(_ channel: UInt32) throws(ProcessPoolError) -> RemoteLink {
        var pair: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            throw ProcessPoolError(.spawnFailed(errno: errno))
        }
        let state = RemoteLinkState()
        let hubEnd = pair[1]
        let posted = relay.post { [self] in
            guard !isFinishedNow, !relay.isStopped else {
                // The agent is gone: the slot reads the end of its link and starts elsewhere.
                state.end(.workerLost, graceful: false)
                close(hubEnd)
                return
            }
            links[channel] = state
            relay.addChannel(channel, read: hubEnd, write: hubEnd)
            relay.send(.open, channel: channel)
        }
        if !posted {
            state.end(.workerLost, graceful: false)
            close(hubEnd)
        }
        return RemoteLink(descriptor: pair[0], state: state, session: self, channel: channel)
    }

    private var isFinishedNow: Bool { lock.withLock { isFinished } }

    /// The slot's side let go of `channel` while the agent's worker may still run: end it there.
    func kill(_ channel: UInt32) {
        relay.post { [self] in
            guard links[channel] != nil else { return }
            release(channel, .workerCrashed(signal: SIGKILL, exitCode: nil), graceful: false)
            relay.send(.closed, channel: channel)  // the agent kills the worker and confirms
        }
    }

    /// Ends the slot's link with `code` (the slot then reads end of stream) — loop thread.
    private func release(_ channel: UInt32, _ code: ProcessPoolError.Code, graceful: Bool) {
        guard let state = links.removeValue(forKey: channel) else { return }
        state.end(code, graceful: graceful)
        if let pipe = relay.removeChannel(channel) { close(pipe.readDescriptor) }  // the socket pair's hub end
    }

    // MARK: Relay.Handler

    func relay(_ relay: Relay, received frame: LinkFrame) {
        switch frame.kind {
        case .heartbeat:
            guard let beat = try? frame.decode(AgentHeartbeat.self) else { return }
            for (channel, bytes) in zip(beat.channels, beat.residentBytes) { links[channel]?.setResident(bytes) }
        case .closed:
            let message = (try? frame.decode(ChannelClosed.self)) ?? ChannelClosed()
            let code: ProcessPoolError.Code
            if message.spawnErrno != 0 {
                code = .spawnFailed(errno: message.spawnErrno)
            } else {
                code = .workerCrashed(signal: message.signal >= 0 ? message.signal : nil, exitCode: message.exitCode >= 0 ? message.exitCode : nil)
            }
            let wasRunning = links[frame.channel] != nil
            if wasRunning, !message.retired, message.signal >= 0 || (message.exitCode > 0) {
                lock.withLock { losses += 1 }
            }
            release(frame.channel, code, graceful: message.retired)
            let retiringNow = lock.withLock { retiring }
            if !message.retired && !retiringNow { hub.offer(self, frame.channel) }
        case .retire:
            lock.withLock { retiring = true }
            hub.withdraw(self)
            hub.logger.info("agent draining", metadata: ["host": "\(connect.host)", "reason": "\(String(decoding: frame.payload, as: UTF8.self))"])
        default:
            hub.logger.debug("unexpected frame from agent", metadata: ["kind": "\(frame.kind)"])
        }
    }

    func relay(_ relay: Relay, channelEnded channel: UInt32) {
        // The slot closed its end first (a kill or a stop that was not answered): end the worker there.
        guard links[channel] != nil else {
            relay.removeChannel(channel)
            return
        }
        release(channel, .workerCrashed(signal: SIGKILL, exitCode: nil), graceful: false)
        relay.send(.closed, channel: channel)
    }

    func relay(_ relay: Relay, linkEnded error: ClusterError) {
        let running = links.count
        let retiringNow = lock.withLock { retiring }
        if retiringNow || hub.isClosed {
            hub.logger.info("agent left", metadata: ["host": "\(connect.host)", "address": "\(address)"])
            hub.configuration.metrics?.agentEvent("left")
        } else {
            hub.configuration.metrics?.agentEvent("lost")
            hub.logger.warning("agent lost", metadata: ["host": "\(connect.host)", "address": "\(address)", "running": "\(running)", "error": "\(error)"])
        }
        lock.withLock { if !retiringNow { losses += running } }
        for channel in Array(links.keys) { release(channel, .workerLost, graceful: retiringNow) }
        hub.withdraw(self)
    }

    func relayTick(_ relay: Relay) {
        relay.send(.heartbeat)
        let done = relay.channels.values.reduce(0) { $0 + $1.fromChannel.answers }
        lock.withLock { batchesDone = max(batchesDone, done) }
    }

    /// The loop ended: nothing of this agent is offered or running any more.
    func finish() {
        for channel in Array(links.keys) { release(channel, .workerLost, graceful: false) }
        hub.withdraw(self)
        lock.withLock {
            isFinished = true
            ended.broadcast()
        }
    }

    func waitFinished(until deadline: UInt64) {
        lock.withLock {
            while !isFinished {
                let now = monotonicNanoseconds()
                guard now < deadline else { return }
                _ = ended.wait(nanoseconds: Int64(deadline - now))
            }
        }
    }
}

/// How a remote worker's link ended, set by its agent's session and read by the slot.
final class RemoteLinkState: @unchecked Sendable {  // @unchecked: `lock` guards it.
    private let lock = PthreadLock()
    private var code: ProcessPoolError.Code?
    private var graceful = false
    private var resident: Int?

    func end(_ code: ProcessPoolError.Code, graceful: Bool) {
        lock.withLock {
            if self.code == nil {
                self.code = code
                self.graceful = graceful
            }
        }
    }

    func setResident(_ bytes: Int) { lock.withLock { resident = bytes } }

    var outcome: (code: ProcessPoolError.Code?, graceful: Bool, resident: Int?) {
        lock.withLock { (code, graceful, resident) }
    }
}

/// A worker in a slot of a remote agent, as the pool's slot sees it: one end of a socket pair.
final class RemoteLink: WorkerLink, @unchecked Sendable {  // @unchecked: released once, by the slot's thread.
    let descriptor: Int32
    let state: RemoteLinkState
    let session: AgentSession
    let channel: UInt32
    private var released = false

    init(descriptor: Int32, state: RemoteLinkState, session: AgentSession, channel: UInt32) {
        self.descriptor = descriptor
        self.state = state
        self.session = session
        self.channel = channel
    }

    deinit {
        if !released { terminate() }
    }

    var inputDescriptor: Int32 { descriptor }
    var outputDescriptor: Int32 { descriptor }
    var processID: Int32? { nil }
    var endedGracefully: Bool { state.outcome.graceful }

    func residentBytes() -> Int? { state.outcome.resident }

    /// Frames to the worker go straight onto the agent's link, sealed on the caller's thread:
    /// no hop through the session's thread. They are taken whole, in order.
    func send(header: UnsafeRawBufferPointer, body: UnsafeRawBufferPointer) -> Int {
        guard !released, session.relay.send(.data, channel: channel, payload: header, more: body) else { return -1 }
        return header.count + body.count
    }

    func reap() -> ProcessPoolError.Code {
        release()
        return state.outcome.code ?? .workerLost
    }

    @discardableResult
    func terminate() -> ProcessPoolError.Code {
        session.kill(channel)
        release()
        return state.outcome.code ?? .workerCrashed(signal: SIGKILL, exitCode: nil)
    }

    func stop(grace: Duration) {
        let deadline = monotonicNanoseconds() + UInt64(grace.saturatingNanoseconds)
        let goodbye = Frame(kind: .goodbye).encodedHeaderOnly
        _ = goodbye.withUnsafeBytes { send(header: $0, body: UnsafeRawBufferPointer(start: nil, count: 0)) }
        if waitForEnd(until: deadline) {
            release()
        } else {
            terminate()
        }
    }

    private func waitForEnd(until deadline: UInt64) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while LinkIO.wait(descriptor, events: Int16(POLLIN), until: deadline) {
            let count = buffer.withUnsafeMutableBytes { readRetryingInterrupts(descriptor, into: $0) }
            if count == 0 || (count < 0 && errno != EAGAIN) { return true }
        }
        return false
    }

    private func release() {
        guard !released else { return }
        released = true
        close(descriptor)
    }
}

/// Starts a pool's workers in free slots of the hub's agents.
struct RemoteLauncher: WorkerLauncher {
    let hub: ClusterHub
    /// How long a slot waits for an agent with a free slot before its start fails.
    let timeout: Duration

    func launch(slot: Int) throws(ProcessPoolError) -> any WorkerLink {
        guard let (session, channel) = hub.acquireSlot(timeout: timeout) else {
            throw ProcessPoolError(.placementFailed("no agent with a free slot within \(timeout): every agent is gone or draining"))
        }
        return try session.open(channel)
    }
}

/// IPv4 socket addresses, by text.
enum SocketAddress {
    static func ipv4(_ host: String, port: UInt16) throws(ClusterError) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
            throw ClusterError(.connectFailed, "\(host) is not an IPv4 address")
        }
        return address
    }

    static func describe(_ address: sockaddr_in) -> String {
        var copy = address.sin_addr
        var text = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
        inet_ntop(AF_INET, &copy, &text, socklen_t(text.count))
        return text.withUnsafeBufferPointer { String(cString: $0.baseAddress!) } + ":" + String(UInt16(bigEndian: address.sin_port))
    }
}
