/// A reusable rendezvous for a fixed number of parties, with Python's `threading.Barrier` semantics.
///
/// Each party calls ``wait(timeout:)`` (a thread) or ``wait()`` (a task). When the last of
/// ``parties`` arrives, the optional action runs once, in that party, and then every party is
/// released, each with a distinct arrival index in `0..<parties`. The barrier then refills for
/// the next round.
///
/// A time-out, ``abort()``, an action that throws, or a cancelled async waiter **breaks** the
/// barrier: every waiting and later party gets ``BrokenBarrierError`` until ``reset()``.
public final class Barrier: @unchecked Sendable {  // @unchecked: all state is guarded by `lock`.
    /// The round's phase, as in CPython's `threading.Barrier`.
    enum Phase: Equatable {
        case filling, draining, resetting, broken
    }

    /// How many parties must arrive to release a round.
    public let parties: Int
    private let action: (@Sendable () throws -> Void)?
    private let defaultTimeout: Duration?
    private let lock = PthreadLock()
    private let changed: PthreadCondition
    private var phase = Phase.filling
    private var arrived = 0
    private var asyncWaiters = WaiterList<Void>()

    /// Creates a barrier.
    ///
    /// - Parameters:
    ///   - parties: how many parties each round needs; at least 1 (a precondition naming `parties`).
    ///   - timeout: the default time-out of ``wait(timeout:)``; `nil` waits forever.
    ///   - action: run by the last party to arrive, before the others are released; if it throws,
    ///     the barrier breaks and that party gets the action's error.
    public init(parties: Int, timeout: Duration? = nil, action: (@Sendable () throws -> Void)? = nil) {
        precondition(parties >= 1, "parties must be at least 1 (got \(parties))")
        if let timeout { precondition(timeout >= .zero, "timeout must not be negative (got \(timeout))") }
        self.parties = parties
        self.defaultTimeout = timeout
        self.action = action
        changed = PthreadCondition(lock: lock)
    }

    /// How many parties are waiting in the current round.
    public var waitingCount: Int {
        lock.withLock { phase == .filling ? arrived : 0 }
    }

    /// Whether the barrier is broken.
    public var isBroken: Bool { lock.withLock { phase == .broken } }

    /// Blocks the calling thread until all parties have arrived.
    ///
    /// - Parameter timeout: overrides the barrier's default; `nil` uses it. Must not be negative.
    /// - Returns: this party's arrival index, `0..<parties`.
    /// - Throws: ``BrokenBarrierError`` if the barrier is or becomes broken, or times out;
    ///   the action's error in the party that ran it.
    @discardableResult
    public func wait(timeout: Duration? = nil) throws -> Int {
        let deadline = WaitDeadline(timeout ?? defaultTimeout)
        var notify: [WaiterList<Void>.Continuation] = []
        defer { for continuation in notify { continuation.resume() } }
        lock.lock()
        defer { lock.unlock() }
        while phase == .draining || phase == .resetting {
            changed.wait()
        }
        if phase == .broken { throw BrokenBarrierError(.broken) }
        let index = arrived
        arrived += 1
        defer { notify += leaveLocked() }
        if index + 1 == parties {
            notify += try releaseLocked()
            return index
        }
        while phase == .filling {
            if !deadline.wait(on: changed) {
                if phase == .filling {
                    notify += breakLocked()
                    throw BrokenBarrierError(.timedOut)
                }
            }
        }
        if phase == .broken || phase == .resetting { throw BrokenBarrierError(.broken) }
        return index
    }

    /// Suspends the current task until all parties have arrived.
    ///
    /// - Returns: this party's arrival index, `0..<parties`.
    /// - Throws: ``BrokenBarrierError`` if the barrier is or becomes broken; the action's error in
    ///   the party that ran it.
    ///
    /// ## Cancellation
    /// Cancelling a waiting task breaks the barrier (as a time-out does), so the other parties are
    /// not left waiting for it; the cancelled task throws `CancellationError`.
    public func wait() async throws -> Int {
        // Wait out a previous round that is still draining or resetting.
        while true {
            let mustWait: Bool = lock.withLock { phase == .draining || phase == .resetting }
            guard mustWait else { break }
            try await waitForChange { $0 == .draining || $0 == .resetting }
        }
        var notify: [WaiterList<Void>.Continuation] = []
        let index: Int = try lock.withLock {
            if phase == .broken { throw BrokenBarrierError(.broken) }
            let index = arrived
            arrived += 1
            if index + 1 == parties {
                defer { notify += leaveLocked() }
                notify += try releaseLocked()
                return -1 - index
            }
            return index
        }
        for continuation in notify { continuation.resume() }
        if index < 0 { return -1 - index }
        do {
            try await waitForChange { $0 == .filling }
        } catch is CancellationError {
            let resumed: [WaiterList<Void>.Continuation] = lock.withLock {
                var resumed = breakLocked()
                resumed += leaveLocked()
                return resumed
            }
            for continuation in resumed { continuation.resume() }
            throw CancellationError()
        }
        let broken: Bool = lock.withLock {
            let broken = phase == .broken || phase == .resetting
            notify = leaveLocked()
            return broken
        }
        for continuation in notify { continuation.resume() }
        if broken { throw BrokenBarrierError(.broken) }
        return index
    }

    /// Breaks the barrier and returns it to the empty state: parties waiting now get
    /// ``BrokenBarrierError``; later parties start a fresh round.
    public func reset() {
        let resumed: [WaiterList<Void>.Continuation] = lock.withLock {
            if arrived > 0 {
                if phase == .filling || phase == .broken { phase = .resetting }
            } else {
                phase = .filling
            }
            changed.broadcast()
            return asyncWaiters.removeAll()
        }
        for continuation in resumed { continuation.resume() }
    }

    /// Breaks the barrier: every waiting and later party gets ``BrokenBarrierError`` until ``reset()``.
    public func abort() {
        let resumed = lock.withLock { breakLocked() }
        for continuation in resumed { continuation.resume() }
    }

    // MARK: - Transitions (lock held)

    private func releaseLocked() throws -> [WaiterList<Void>.Continuation] {
        do {
            try action?()
        } catch {
            _ = breakLocked()
            throw error
        }
        phase = .draining
        changed.broadcast()
        return asyncWaiters.removeAll()
    }

    private func breakLocked() -> [WaiterList<Void>.Continuation] {
        phase = .broken
        changed.broadcast()
        return asyncWaiters.removeAll()
    }

    /// A party leaves the round; the last one out lets the next round fill.
    private func leaveLocked() -> [WaiterList<Void>.Continuation] {
        arrived -= 1
        guard arrived == 0, phase == .draining || phase == .resetting else { return [] }
        phase = .filling
        changed.broadcast()
        return asyncWaiters.removeAll()
    }

    /// Suspends until the phase changes away from one where `stillWaiting` holds.
    private func waitForChange(while stillWaiting: @escaping (Phase) -> Bool) async throws {
        try await suspendUntilResumed(lock: lock) { id, continuation in
            guard stillWaiting(phase) else { return .resume(.success(())) }
            asyncWaiters.append(id, continuation)
            return .suspended
        } unregister: { [self] id in
            asyncWaiters.remove(id: id)
        }
    }
}
