#if canImport(Glibc)
import Glibc
#endif
import CWorkersShims
import Synchronization
import WorkersCore
import WorkersWire
import WorkersProcesses

/// The event loop on each end of a link, on one thread: frames between the link and its
/// channels (on the driver, socket pairs to the pool's slots; on an agent, pipes to its
/// workers), heartbeats, and silence.
///
/// Other threads post closures to run on the loop's thread (``post(_:)``) and send frames on
/// the link directly (``send(_:channel:payload:)``), under the link's lock, so a frame goes out
/// without a thread hop when the socket has room.
final class Relay: @unchecked Sendable {  // @unchecked: `lock` guards the output side; the rest is the loop thread's.
    /// What the loop's owner does with what arrives.
    protocol Handler: AnyObject {
        /// A control frame (anything but data) from the peer.
        func relay(_ relay: Relay, received frame: LinkFrame)
        /// The channel's own side ended (its worker, or its slot, closed it).
        func relay(_ relay: Relay, channelEnded channel: UInt32)
        /// The link ended: closed, silent, or broken (the error says which). The loop stops.
        func relay(_ relay: Relay, linkEnded error: ClusterError)
        /// Called every heartbeat interval, on the loop thread.
        func relayTick(_ relay: Relay)
        /// Called after the loop was woken (a posted command, or an extra wake-up such as a
        /// signal's).
        func relayWoke(_ relay: Relay)
        /// While ``Relay/draining``: the channel's worker has answered everything it was sent.
        func relay(_ relay: Relay, idleWhileDraining channel: UInt32)
    }

    struct ChannelPipe {
        var readDescriptor: Int32
        var writeDescriptor: Int32
        var pending: [UInt8] = []
        var pendingOffset = 0
        /// Frame kinds seen on each direction (on agents, to know when a worker is idle).
        var toChannel = FrameScanner()
        var fromChannel = FrameScanner()
    }

    let inputDescriptor: Int32
    let outputDescriptor: Int32
    weak var handler: (any Handler)?
    private(set) var channels: [UInt32: ChannelPipe] = [:]
    private var opener: LinkOpener
    private let interval: UInt64
    private let lostAfter: UInt64
    /// When the last frame came (monotonic nanoseconds): the loop thread's.
    private var lastReceived: UInt64
    /// The same, for reports from other threads.
    private let lastReceivedShared = Atomic<UInt64>(0)

    /// When the last frame came, for reports from any thread.
    var lastFrameAt: UInt64 { lastReceivedShared.load(ordering: .relaxed) }
    private var nextTick: UInt64
    /// Adding to this eventfd wakes the loop (a signal handler may).
    let wake: Int32
    /// When set, a channel whose worker is idle is handed to the handler instead of being sent
    /// more (an agent that drains).
    var draining = false
    private var stopped = false
    private let scansFrames: Bool
    /// Whether the output is a socket (`send` with `MSG_NOSIGNAL`) or a pipe (an ssh's stdin: `write`).
    private let outputIsSocket: Bool
    /// After forwarding data, the loop polls without sleeping this long: the answer to a batch
    /// often follows within microseconds, and a wake-up costs more than that.
    private let spinNanoseconds = WorkerProcess.spinNanoseconds
    private var spinUntil: UInt64 = 0

    private let lock = PthreadLock()
    private var sealer: LinkSealer
    private var output: [UInt8] = []
    private var outputOffset = 0
    private var outputClosed = false
    private var commands: [() -> Void] = []
    /// Cleared when the loop ends: a command posted after that would never run.
    private var acceptsCommands = true

    /// Stops reading channels while this much is waiting to go out on the link.
    private static let backlogLimit = 8 << 20

    init(input: Int32, output: Int32, link: AuthenticatedLink, heartbeat: Heartbeat, scansFrames: Bool) {
        inputDescriptor = input
        outputDescriptor = output
        opener = link.opener
        sealer = link.sealer
        interval = UInt64(heartbeat.interval.saturatingNanoseconds)
        lostAfter = UInt64(heartbeat.lostAfter.saturatingNanoseconds)
        lastReceived = monotonicNanoseconds()
        lastReceivedShared.store(lastReceived, ordering: .relaxed)
        nextTick = lastReceived
        wake = cworkers_eventfd()
        self.scansFrames = scansFrames
        var status = stat()
        outputIsSocket = fstat(output, &status) == 0 && status.st_mode & S_IFMT == S_IFSOCK
        _ = cworkers_set_nonblocking(input)
        _ = cworkers_set_nonblocking(output)
    }

    deinit {
        close(wake)
    }

    // MARK: Any thread

    /// Seals and sends a frame now if the link has room, else queues it for the loop.
    /// Returns `false` once the link is closed.
    @discardableResult
    func send(_ kind: LinkFrame.Kind, channel: UInt32 = 0, payload: UnsafeRawBufferPointer, more: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)) -> Bool {
        let needsWake: Bool? = lock.withLock {
            guard !outputClosed else { return nil }
            let wasEmpty = outputOffset == output.count
            sealer.seal(kind, channel: channel, payload: payload, more: more, into: &output)
            if wasEmpty { flushLocked() }
            return wasEmpty && outputOffset < output.count
        }
        guard let needsWake else { return false }
        if needsWake { signalWake() }
        return true
    }

    @discardableResult
    func send(_ kind: LinkFrame.Kind, channel: UInt32 = 0, payload: [UInt8] = []) -> Bool {
        payload.withUnsafeBytes { send(kind, channel: channel, payload: $0) }
    }

    @discardableResult
    func send<M: Encodable>(_ kind: LinkFrame.Kind, channel: UInt32 = 0, message: M) -> Bool {
        guard let frame = try? LinkFrame(kind, channel: channel, message: message) else { return false }
        return send(kind, channel: channel, payload: frame.payload)
    }

    /// Runs `command` on the loop's thread; returns `false` (and drops it) once the loop has
    /// ended.
    @discardableResult
    func post(_ command: @escaping () -> Void) -> Bool {
        let accepted: Bool = lock.withLock {
            guard acceptsCommands else { return false }
            commands.append(command)
            return true
        }
        if accepted { signalWake() }
        return accepted
    }

    /// The loop has ended: no more commands are taken, and those already posted run now, on the
    /// loop's thread, so each one's caller learns its outcome.
    private func closeCommands() {
        let pending: [() -> Void] = lock.withLock {
            acceptsCommands = false
            defer { commands.removeAll() }
            return commands
        }
        for command in pending { command() }
    }

    /// Waits up to `deadline` for everything queued to be written.
    func flush(until deadline: UInt64) {
        while true {
            let done: Bool = lock.withLock {
                flushLocked()
                return outputOffset == output.count || outputClosed
            }
            if done || !LinkIO.wait(outputDescriptor, events: Int16(POLLOUT), until: deadline) { return }
        }
    }

    private func signalWake() {
        var one: UInt64 = 1
        _ = Glibc.write(wake, &one, 8)
    }

    /// Writes what it can; the caller holds `lock`.
    private func flushLocked() {
        while outputOffset < output.count {
            let written = output.withUnsafeBytes { raw in
                retryingInterrupts {
                    outputIsSocket
                        ? Glibc.send(outputDescriptor, raw.baseAddress! + outputOffset, raw.count - outputOffset, Int32(MSG_NOSIGNAL))
                        : Glibc.write(outputDescriptor, raw.baseAddress! + outputOffset, raw.count - outputOffset)
                }
            }
            if written > 0 {
                outputOffset += written
            } else {
                if written < 0 && errno != EAGAIN { outputClosed = true }
                break
            }
        }
        if outputOffset == output.count {
            output.removeAll(keepingCapacity: output.capacity <= 1 << 20)
            outputOffset = 0
        }
    }

    // MARK: The loop thread

    func addChannel(_ channel: UInt32, read: Int32, write: Int32) {
        _ = cworkers_set_nonblocking(read)
        _ = cworkers_set_nonblocking(write)
        channels[channel] = ChannelPipe(readDescriptor: read, writeDescriptor: write)
    }

    /// Forgets a channel; the caller closes its descriptors.
    @discardableResult
    func removeChannel(_ channel: UInt32) -> ChannelPipe? {
        channels.removeValue(forKey: channel)
    }

    /// Whether the channel's worker has answered every batch sent to it.
    func isIdle(_ channel: UInt32) -> Bool {
        guard let pipe = channels[channel] else { return true }
        return pipe.toChannel.submits <= pipe.fromChannel.answers
    }

    /// Whether the loop has ended or been told to (loop thread).
    var isStopped: Bool { stopped }

    /// Ends the loop after this round.
    func stop() {
        stopped = true
    }

    /// Runs until the link ends or ``stop()``.
    private func runLoop() {
        var buffer = [UInt8](repeating: 0, count: 256 * 1024)
        var descriptors: [pollfd] = []
        var order: [UInt32] = []
        while !stopped {
            let (backlog, wantsOutput) = lock.withLock { (output.count - outputOffset, outputOffset < output.count) }
            descriptors.removeAll(keepingCapacity: true)
            order.removeAll(keepingCapacity: true)
            descriptors.append(pollfd(fd: wake, events: Int16(POLLIN), revents: 0))
            descriptors.append(pollfd(fd: inputDescriptor, events: Int16(POLLIN), revents: 0))
            descriptors.append(pollfd(fd: wantsOutput ? outputDescriptor : -1, events: Int16(POLLOUT), revents: 0))
            for (id, pipe) in channels {
                order.append(id)
                descriptors.append(pollfd(fd: backlog < Self.backlogLimit ? pipe.readDescriptor : -1, events: Int16(POLLIN), revents: 0))
                descriptors.append(pollfd(fd: pipe.pendingOffset < pipe.pending.count ? pipe.writeDescriptor : -1, events: Int16(POLLOUT), revents: 0))
            }
            let now = monotonicNanoseconds()
            let wakeAt = min(nextTick, lastReceived &+ lostAfter)
            let milliseconds = wakeAt > now ? Int32(min((wakeAt - now + 999_999) / 1_000_000, 60_000)) : 0
            var ready: Int32 = 0
            if spinUntil > now {
                repeat {
                    ready = poll(&descriptors, nfds_t(descriptors.count), 0)
                    if ready != 0 { break }
                    sched_yield()
                } while monotonicNanoseconds() < spinUntil
            }
            if ready == 0 {
                let start = monotonicNanoseconds()
                let remaining = wakeAt > start ? Int32(min((wakeAt - start + 999_999) / 1_000_000, 60_000)) : 0
                ready = poll(&descriptors, nfds_t(descriptors.count), spinUntil > now ? remaining : milliseconds)
            }
            if ready < 0 && errno != EINTR { break }
            if descriptors[0].revents != 0 {
                var value: UInt64 = 0
                _ = Glibc.read(wake, &value, 8)
                let pending: [() -> Void] = lock.withLock {
                    defer { commands.removeAll() }
                    return commands
                }
                for command in pending { command() }
                handler?.relayWoke(self)
                if stopped { return }
            }
            if descriptors[2].revents != 0 {
                let closed: Bool = lock.withLock {
                    flushLocked()
                    return outputClosed
                }
                if closed { return end(ClusterError(.linkLost, "the link closed while sending")) }
            }
            if descriptors[1].revents != 0 {
                if let error = readLink(&buffer) { return end(error) }
            }
            for (position, id) in order.enumerated() {
                let read = descriptors[3 + 2 * position].revents
                let write = descriptors[4 + 2 * position].revents
                if write != 0 { flushChannel(id) }
                if read != 0 { readChannel(id, &buffer) }
            }
            let after = monotonicNanoseconds()
            if after >= lastReceived &+ lostAfter {
                return end(ClusterError(.linkLost, "no frame from the peer for \((after - lastReceived) / 1_000_000) ms (lostAfter \(lostAfter / 1_000_000) ms)"))
            }
            if after >= nextTick {
                nextTick = after + interval
                handler?.relayTick(self)
            }
        }
    }

    private func end(_ error: ClusterError) {
        lock.withLock { outputClosed = true }
        stopped = true
        handler?.relay(self, linkEnded: error)
    }

    /// Runs the loop (``runLoop()``), then runs what was posted too late for it.
    func run() {
        runLoop()
        closeCommands()
    }

    /// Reads the link; returns an error if it ended.
    private func readLink(_ buffer: inout [UInt8]) -> ClusterError? {
        while true {
            let count = buffer.withUnsafeMutableBytes { readRetryingInterrupts(inputDescriptor, into: $0) }
            if count > 0 {
                lastReceived = monotonicNanoseconds()
                lastReceivedShared.store(lastReceived, ordering: .relaxed)
                buffer.withUnsafeBytes { opener.feed(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
                do {
                    while let frame = try opener.next() {
                        if frame.kind == .data {
                            spinUntil = lastReceived + spinNanoseconds
                            writeChannel(frame.channel, frame.payload)
                        } else {
                            handler?.relay(self, received: frame)
                        }
                        if stopped { return nil }
                    }
                } catch {
                    return error
                }
                if count < buffer.count { return nil }
            } else if count == 0 {
                return ClusterError(.linkLost, "the peer closed the link")
            } else if errno == EAGAIN {
                return nil
            } else {
                return ClusterError(.linkLost, "reading the link: \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Queues bytes for a channel and writes what it can; bytes for a channel that is gone are
    /// dropped (a batch sent as its worker ended).
    func writeChannel(_ id: UInt32, _ bytes: [UInt8]) {
        if draining && isIdle(id) {
            handler?.relay(self, idleWhileDraining: id)
            return
        }
        guard var pipe = channels[id] else { return }
        // A draining agent's workers are sent no new batch (with prefetch the driver sends one
        // ahead, so the worker would never fall idle): the driver gets those back, uncharged,
        // when the slot closes as drained.
        if scansFrames && draining {
            pipe.pending += pipe.toChannel.forward(bytes, droppingSubmits: true)
        } else {
            // The hot path: counted in place, no filtered copy.
            if scansFrames { pipe.toChannel.feed(bytes) }
            pipe.pending.append(contentsOf: bytes)
        }
        channels[id] = pipe
        flushChannel(id)
    }

    private func flushChannel(_ id: UInt32) {
        guard var pipe = channels[id] else { return }
        while pipe.pendingOffset < pipe.pending.count {
            let count = pipe.pending.withUnsafeBytes { raw in
                retryingInterrupts { Glibc.write(pipe.writeDescriptor, raw.baseAddress! + pipe.pendingOffset, raw.count - pipe.pendingOffset) }
            }
            if count > 0 {
                pipe.pendingOffset += count
            } else {
                break  // EAGAIN: polled for room; an error: the read side will see the end
            }
        }
        if pipe.pendingOffset == pipe.pending.count {
            pipe.pending.removeAll(keepingCapacity: true)
            pipe.pendingOffset = 0
        }
        channels[id] = pipe
    }

    private func readChannel(_ id: UInt32, _ buffer: inout [UInt8]) {
        guard let descriptor = channels[id]?.readDescriptor else { return }
        while true {
            let count = buffer.withUnsafeMutableBytes { readRetryingInterrupts(descriptor, into: $0) }
            if count > 0 {
                buffer.withUnsafeBytes { raw in
                    let bytes = UnsafeRawBufferPointer(rebasing: raw[0..<count])
                    if scansFrames { channels[id]?.fromChannel.feed(bytes) }
                    send(.data, channel: id, payload: bytes)
                    spinUntil = monotonicNanoseconds() + spinNanoseconds
                }
                if draining && isIdle(id) {
                    handler?.relay(self, idleWhileDraining: id)
                    return
                }
                if count < buffer.count { return }
            } else if count < 0 && errno == EAGAIN {
                return
            } else {
                handler?.relay(self, channelEnded: id)
                return
            }
        }
    }
}

extension Relay.Handler {
    func relayWoke(_ relay: Relay) {}
    func relay(_ relay: Relay, idleWhileDraining channel: UInt32) {}
}

/// Counts the frames in a worker's byte stream: how many batches went to a worker and how many
/// answers came back, so an agent that drains knows when a slot is idle; and, for a draining
/// agent, leaves out the batches that arrive, whole frames only, however the stream is split.
struct FrameScanner {
    private var header: [UInt8] = []
    private var remaining = 0
    /// Whether the frame being passed is left out.
    private var dropping = false
    private(set) var submits = 0
    private(set) var answers = 0
    /// Submits left out.
    private(set) var dropped = 0

    mutating func feed(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { feed($0) }
    }

    /// Counts the frames in `bytes`, which pass whole.
    mutating func feed(_ bytes: UnsafeRawBufferPointer) {
        scan(bytes, droppingSubmits: false) { _ in }
    }

    /// The bytes of `bytes` to pass on: all of them, or with `droppingSubmits` all but the Submit
    /// frames that begin in them. A frame begun before keeps going as it began.
    mutating func forward(_ bytes: [UInt8], droppingSubmits: Bool) -> [UInt8] {
        var kept: [UInt8] = []
        kept.reserveCapacity(bytes.count)
        bytes.withUnsafeBytes { scan($0, droppingSubmits: droppingSubmits) { kept.append(contentsOf: $0) } }
        return kept
    }

    /// Walks the frames in `bytes`, handing `emit` what is passed on: a frame's 5-byte header
    /// once its kind is known, then its body as it comes.
    private mutating func scan(_ bytes: UnsafeRawBufferPointer, droppingSubmits: Bool, emit: (UnsafeRawBufferPointer) -> Void) {
        var index = 0
        while index < bytes.count {
            if remaining > 0 {
                let take = min(remaining, bytes.count - index)
                if !dropping { emit(UnsafeRawBufferPointer(rebasing: bytes[index..<(index + take)])) }
                remaining -= take
                index += take
                continue
            }
            header.append(bytes[index])
            index += 1
            guard header.count == 5 else { continue }
            let length = Int(header[0]) << 24 | Int(header[1]) << 16 | Int(header[2]) << 8 | Int(header[3])
            dropping = droppingSubmits && header[4] == Frame.Kind.submit.rawValue
            if dropping {
                dropped += 1
            } else {
                switch header[4] {
                case Frame.Kind.submit.rawValue: submits += 1
                case Frame.Kind.result.rawValue, Frame.Kind.failure.rawValue: answers += 1
                default: break
                }
                header.withUnsafeBytes { emit($0) }
            }
            remaining = max(length - 1, 0)
            header.removeAll(keepingCapacity: true)
        }
    }
}
