#if canImport(Glibc)
import Glibc
#endif
import CWorkersShims
import WorkersCore
import WorkersWire

/// What one worker slot shares between its own thread and everyone else: the current link's
/// outbound side, the batches in flight, and a mailbox with a wake-up descriptor.
///
/// Callers write a Submit frame here themselves when the worker is idle (no hop through the
/// slot's thread); the slot's thread reads the link, keeps the time, and carries out the
/// commands posted to it. A send names the worker process (`generation`) it is meant for and is
/// dropped if that process is gone, so a late writer never reaches a replacement.
final class WorkerSlot: @unchecked Sendable {  // @unchecked: mutable state is guarded by `lock`.
    /// What another thread asks of the slot's thread.
    enum Command: Sendable {
        /// Start a process (the slot was down).
        case start
        /// Say goodbye to the (idle) worker and reap it.
        case stop
        /// Kill the worker if it still runs `attempt` (a cancellation).
        case kill(attempt: UInt64)
    }

    /// A batch sent to the worker and not yet answered, as the slot's thread needs it.
    struct InFlight: Sendable {
        var attempt: UInt64
        var request: BatchRequest
        /// When the worker began it (monotonic nanoseconds): when it was sent, or, for a batch
        /// sent behind others, when the answer before it was read.
        var startedAt: UInt64
        /// How long it may run, in nanoseconds, if it can time out.
        var timeout: UInt64?

        /// When it times out, if it can.
        var deadline: UInt64? { timeout.map { startedAt &+ $0 } }
    }

    enum SendOutcome {
        /// Written whole.
        case sent
        /// Partly written or queued behind earlier bytes: the slot's thread must be woken to
        /// finish it when the descriptor is writable.
        case queued
        /// The process it was meant for is gone; nothing was written.
        case gone
    }

    let index: Int
    /// Readable when a command was posted or a write is pending.
    let wakeDescriptor: Int32
    private let lock = PthreadLock()
    private var link: (any WorkerLink)?
    private var generation: UInt64 = 0
    private var pending: [UInt8] = []
    private var pendingOffset = 0
    private var commands: [Command] = []
    /// The batches sent to the current process and not answered, in the order their frames went
    /// out, which is the order the worker runs them: the first one runs. At most `1 + prefetch`.
    private var inFlight: [InFlight] = []

    init(index: Int) {
        self.index = index
        let descriptor = cworkers_eventfd()
        precondition(descriptor >= 0, "eventfd failed: errno \(-descriptor)")
        wakeDescriptor = descriptor
    }

    deinit { close(wakeDescriptor) }

    /// The live worker's process id, if it has a local one.
    var processID: Int32? { lock.withLock { link?.processID } }

    /// Whether bytes wait for the descriptor to become writable.
    var hasPendingOutput: Bool { lock.withLock { pendingOffset < pending.count } }

    /// The batch the worker runs now (the first in flight).
    var running: InFlight? { lock.withLock { inFlight.first } }

    /// Makes `link` the slot's current process, number `generation`.
    func install(_ link: any WorkerLink, generation: UInt64) {
        lock.withLock {
            self.link = link
            self.generation = generation
            pending.removeAll()
            pendingOffset = 0
            inFlight.removeAll()
        }
    }

    /// Stops every sender from using the current link (before it is released); returns what was
    /// in flight on it, the running batch first. A send after this finds no link and writes nothing.
    @discardableResult
    func detach() -> [InFlight] {
        lock.withLock {
            link = nil
            pending.removeAll()
            pendingOffset = 0
            defer { inFlight = [] }
            return inFlight
        }
    }

    /// Writes what is pending, waiting for room until `deadline` (monotonic nanoseconds).
    /// Returns whether everything was written.
    func flushPending(until deadline: UInt64) -> Bool {
        while flush() {
            let descriptor = lock.withLock { link?.outputDescriptor }
            guard let descriptor, waitUntilReady(descriptor, for: POLLOUT, until: deadline) else { return false }
        }
        return true
    }

    /// Sends a frame — `header` (13 bytes, request id already in it), then `frame[13...]` — to
    /// process `generation`, recording `batch` (sent at `now`) first so the answer always finds it.
    func send(header: UnsafeRawBufferPointer, frame: [UInt8], generation: UInt64, batch: InFlight?) -> SendOutcome {
        lock.lock()
        defer { lock.unlock() }
        guard let link, self.generation == generation else { return .gone }
        if let batch { inFlight.append(batch) }
        let bodyCount = frame.count - Frame.headerSize - 4
        if pendingOffset < pending.count {
            pending.append(contentsOf: header)
            pending.append(contentsOf: frame[(Frame.headerSize + 4)...])
            return .queued
        }
        let written: Int = frame.withUnsafeBytes { body in
            link.send(header: header, body: UnsafeRawBufferPointer(rebasing: body[(Frame.headerSize + 4)...]))
        }
        if written < 0 { return .sent }  // the peer is gone: its thread sees the end of the stream
        let total = header.count + bodyCount
        guard written < total else { return .sent }
        pending.removeAll(keepingCapacity: true)
        pendingOffset = 0
        if written < header.count {
            pending.append(contentsOf: header[written...])
            pending.append(contentsOf: frame[(Frame.headerSize + 4)...])
        } else {
            pending.append(contentsOf: frame[(Frame.headerSize + 4 + written - header.count)...])
        }
        return .queued
    }

    /// Writes what is pending, as far as the descriptor takes it. Returns whether more is left.
    func flush() -> Bool {
        lock.withLock {
            guard let link else { return false }
            while pendingOffset < pending.count {
                let count = pending.withUnsafeBytes { link.send(header: UnsafeRawBufferPointer(rebasing: $0[pendingOffset...]), body: UnsafeRawBufferPointer(start: nil, count: 0)) }
                if count == 0 { return true }
                if count < 0 {
                    pending.removeAll()
                    pendingOffset = 0
                    return false  // the peer is gone: the end of the stream says so
                }
                pendingOffset += count
            }
            pending.removeAll(keepingCapacity: true)
            pendingOffset = 0
            return false
        }
    }

    /// Takes batch `attempt` from those in flight, if it is one, as its answer was read at `now`;
    /// the next one then runs from `now`.
    func takeInFlight(attempt: UInt64, now: UInt64) -> InFlight? {
        lock.withLock {
            guard let position = inFlight.firstIndex(where: { $0.attempt == attempt }) else { return nil }
            let taken = inFlight.remove(at: position)
            if position == 0, !inFlight.isEmpty { inFlight[0].startedAt = max(inFlight[0].startedAt, now) }
            return taken
        }
    }

    /// Posts a command for the slot's thread and wakes it.
    func post(_ command: Command) {
        lock.withLock { commands.append(command) }
        wake()
    }

    /// The commands posted since the last call.
    func takeCommands() -> [Command] {
        lock.withLock {
            guard !commands.isEmpty else { return [] }
            defer { commands.removeAll() }
            return commands
        }
    }

    /// Wakes the slot's thread from its poll.
    func wake() {
        var one: UInt64 = 1
        _ = write(wakeDescriptor, &one, 8)
    }

    /// Clears the wake-up counter.
    func drainWake() {
        var count: UInt64 = 0
        _ = read(wakeDescriptor, &count, 8)
    }
}
