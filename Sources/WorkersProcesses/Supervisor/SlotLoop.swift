#if canImport(Glibc)
import Glibc
#endif
import CWorkersShims
import Logging
import WorkersCore
import WorkersWire

/// The life of one worker slot's thread: it starts the slot's worker processes (so their
/// parent-death signal is tied to a thread that lives as long as they do), reads their answers,
/// sends heartbeats, watches time-outs, the memory limit and the worker's heartbeats, carries out
/// kills after confirming the attempt, and replaces a lost worker.
///
/// It blocks in one `poll` over the link's input, its output while a write is pending, and the
/// slot's wake-up descriptor. After each answer it polls without sleeping for a moment
/// (``Supervisor/Configuration/spinNanoseconds``), since the next answer often follows soon.
struct SlotLoop {
    typealias Machine = Supervisor.Machine

    let supervisor: Supervisor
    let slot: WorkerSlot
    private var link: (any WorkerLink)?
    private var generation: UInt64 = 0
    private var decoder: FrameDecoder
    private var lastReceived: UInt64 = 0
    private var nextHeartbeat: UInt64 = 0
    private var spinUntil: UInt64 = 0
    private var finished = false
    private var firstStartReported = false
    /// The attempt the process on the link detached last was running, if any: the only one of
    /// its batches that may be charged for its loss.
    private var runningOnDetached: UInt64?
    private var buffer = [UInt8](repeating: 0, count: 64 * 1024)
    private let heartbeatFrame = Frame(kind: .heartbeat).encodedHeaderOnly
    private let interval: UInt64
    private let lostAfter: UInt64

    init(supervisor: Supervisor, slot: WorkerSlot) {
        self.supervisor = supervisor
        self.slot = slot
        decoder = FrameDecoder(maxFrameSize: supervisor.configuration.maxFrameSize)
        interval = UInt64(supervisor.configuration.heartbeat.interval.saturatingNanoseconds)
        lostAfter = UInt64(supervisor.configuration.heartbeat.lostAfter.saturatingNanoseconds)
    }

    private var index: Int { slot.index }
    private var logger: Logger { supervisor.logger }

    mutating func run() {
        _ = cworkers_set_thread_name("workers-slot-\(index)")
        perform(.start)
        while !finished {
            for command in slot.takeCommands() where !finished { handle(command) }
            if finished { break }
            guard link != nil else {
                if supervisor.state(of: index) == .gone { break }
                waitForWake()
                continue
            }
            waitAndServe()
        }
    }

    // MARK: Commands

    private mutating func handle(_ command: WorkerSlot.Command) {
        switch command {
        case .start:
            if link == nil, supervisor.state(of: index) == .starting { perform(.start) }
        case .stop:
            if supervisor.state(of: index) == .stopping { perform(.stop) }
        case .kill(let attempt):
            guard link != nil, supervisor.confirmKill(index, attempt: attempt) else { return }  // a late cancel: a no-op
            // The cancelled batch may be one waiting behind the running one: that one is then
            // killed too, through no fault of its own, and runs again without counting an attempt.
            lost(.workerCrashed(signal: SIGKILL, exitCode: nil), reason: "cancelled", cancelling: attempt)
        }
    }

    /// Carries out what the state machine asked of this thread, and what follows from it.
    private mutating func perform(_ first: Machine.WorkerCommand) {
        var command = first
        while true {
            switch command {
            case .none:
                return
            case .send(let dispatches):
                for dispatch in dispatches { supervisor.send(dispatch, from: index) }
                spinUntil = monotonicNanoseconds() + supervisor.configuration.spinNanoseconds
                return
            case .terminate:
                lost(.workerCrashed(signal: SIGKILL, exitCode: nil), reason: "cancelled")
                return
            case .stop:
                stopLink()
                supervisor.workerStopped(index)
                finished = true
                return
            case .recycle:
                stopLink()
                supervisor.metrics?.workerExited("recycled")
                command = startWorker()
            case .start:
                command = startWorker()
            }
        }
    }

    // MARK: Starting and ending workers

    /// Starts a process and shakes hands; returns what the slot does next.
    private mutating func startWorker() -> Machine.WorkerCommand {
        let configuration = supervisor.configuration
        do throws(ProcessPoolError) {
            let newLink = try supervisor.launcher.launch(slot: index)
            var newDecoder = FrameDecoder(maxFrameSize: configuration.maxFrameSize)
            let hello = Hello(
                workerID: index, jobNames: configuration.jobNames, maxFrameSize: configuration.maxFrameSize,
                heartbeatMilliseconds: configuration.heartbeat.intervalMilliseconds,
                lostAfterMilliseconds: configuration.heartbeat.lostAfterMilliseconds
            )
            try LinkHandshake.run(newLink, hello: hello, decoder: &newDecoder, timeout: configuration.handshakeTimeout)
            generation += 1
            slot.install(newLink, generation: generation)
            link = newLink
            decoder = newDecoder
            let now = monotonicNanoseconds()
            lastReceived = now
            nextHeartbeat = now + interval
            reportFirstStart(nil)
            logger.debug("worker started", metadata: ["slot": "\(index)", "pid": "\(newLink.processID.map(String.init) ?? "-")"])
            return supervisor.workerStarted(index, generation: generation)
        } catch {
            logger.error("could not start a worker", metadata: ["slot": "\(index)", "error": "\(error)"])
            reportFirstStart(error)
            let (command, gone) = supervisor.workerStartFailed(index, error)
            if gone { finished = true }
            return command
        }
    }

    private mutating func reportFirstStart(_ failure: ProcessPoolError?) {
        guard !firstStartReported else { return }
        firstStartReported = true
        supervisor.firstStartEnded(failure)
    }

    /// Takes the link out of the slot, so no sender reaches it any more, and remembers what was
    /// on it; the caller then releases it.
    private mutating func detachLink() -> (any WorkerLink)? {
        guard let current = link else { return nil }
        let detached = slot.detach()
        for _ in detached { supervisor.metrics?.batchEnded(answered: nil, nanoseconds: 0) }
        runningOnDetached = detached.first?.attempt
        link = nil
        return current
    }

    /// Tells the worker goodbye and reaps it. A frame still half written (a heartbeat behind a
    /// full pipe) is finished first, or the goodbye would be read as its tail; if it cannot be,
    /// the idle worker is ended instead.
    private mutating func stopLink() {
        guard link != nil else { return }
        let flushed = slot.flushPending(until: monotonicNanoseconds() + 100_000_000)
        guard let current = detachLink() else { return }
        if flushed { current.stop(grace: supervisor.configuration.grace) } else { current.terminate() }
    }

    /// The worker is gone, or must go (`code` says why): a link still attached is ended now; the
    /// state machine settles its batch and says whether to replace it.
    ///
    /// A worker retired on purpose (`graceful`: its node drained) did not fail its batches: they
    /// go back to the queue without counting an attempt. Nor did one killed to cancel a batch it
    /// held (`cancelling`) fail the batch it was running, unless that is the cancelled one.
    ///
    /// `charging` names the batch at fault when the slot knows it better than the link does (a
    /// malformed answer, read after its batch left those in flight).
    private mutating func lost(_ code: ProcessPoolError.Code, reason: String? = nil, graceful: Bool = false, cancelling: UInt64? = nil, charging: UInt64? = nil) {
        if let current = detachLink() { current.terminate() }
        supervisor.metrics?.workerExited(graceful ? "retired" : reason ?? code.metricsReason)
        logger.debug("worker lost", metadata: ["slot": "\(index)", "error": "\(ProcessPoolError(code))", "graceful": "\(graceful)"])
        var running = graceful ? nil : charging ?? runningOnDetached
        if let cancelling, running != cancelling { running = nil }
        let command = supervisor.workerLost(index, code, running: running)
        if case .none = command {
            finished = true
            return
        }
        perform(command)
    }

    // MARK: Waiting

    private func waitForWake() {
        var descriptor = pollfd(fd: slot.wakeDescriptor, events: Int16(POLLIN), revents: 0)
        _ = poll(&descriptor, 1, -1)
        slot.drainWake()
    }

    /// One round of waiting on the link and the clock, and serving what came.
    private mutating func waitAndServe() {
        guard let current = link else { return }
        let inFlight = slot.running
        var now = monotonicNanoseconds()
        var wakeAt = nextHeartbeat
        wakeAt = min(wakeAt, lastReceived &+ lostAfter)
        if let deadline = inFlight?.deadline { wakeAt = min(wakeAt, deadline) }
        if inFlight != nil, supervisor.configuration.memoryLimit != nil { wakeAt = min(wakeAt, now + 10_000_000) }

        var descriptors = (
            pollfd(fd: slot.wakeDescriptor, events: Int16(POLLIN), revents: 0),
            pollfd(fd: current.inputDescriptor, events: Int16(POLLIN), revents: 0),
            pollfd(fd: slot.hasPendingOutput ? current.outputDescriptor : -1, events: Int16(POLLOUT), revents: 0)
        )
        let spinUntil = self.spinUntil
        withUnsafeMutableBytes(of: &descriptors) { raw in
            let pointer = raw.baseAddress!.assumingMemoryBound(to: pollfd.self)
            if spinUntil > now {
                // Poll without sleeping for a moment: an answer now is read without a wake-up.
                while poll(pointer, 3, 0) == 0, monotonicNanoseconds() < spinUntil { sched_yield() }
            }
            if pointer[0].revents | pointer[1].revents | pointer[2].revents == 0 {
                let pollStart = spinUntil > now ? monotonicNanoseconds() : now  // the spin took time
                let milliseconds = wakeAt > pollStart ? Int32(min((wakeAt - pollStart + 999_999) / 1_000_000, 60_000)) : 0
                _ = poll(pointer, 3, milliseconds)
            }
        }
        if descriptors.0.revents != 0 { slot.drainWake() }
        if descriptors.2.revents != 0 { _ = slot.flush() }
        if descriptors.1.revents != 0 {
            readInput()
            guard link != nil else { return }
        }
        now = monotonicNanoseconds()
        checkClock(now: now)
    }

    /// Reads what the worker sent and serves each complete frame.
    private mutating func readInput() {
        guard let current = link else { return }
        var endOfStream = false
        var received = false
        while true {
            let count = buffer.withUnsafeMutableBytes { readRetryingInterrupts(current.inputDescriptor, into: $0) }
            if count > 0 {
                received = true
                decoder.feed(buffer[0..<count])
                if count < buffer.count { break }
            } else if count == 0 {
                endOfStream = true
                break
            } else {
                if errno != EAGAIN { endOfStream = true }
                break
            }
        }
        if received { lastReceived = monotonicNanoseconds() }
        do {
            while link != nil, let frame = try decoder.next() { serve(frame) }
        } catch {
            violation(error.description)
            return
        }
        // Only if the link that ended is still this slot's: serving a frame above may have
        // replaced it (a recycle, a violation), and the new process has not ended.
        if endOfStream, let now = link, now === current, let ended = detachLink() {
            let code = ended.reap()
            lost(code, graceful: ended.endedGracefully)
        }
    }

    private mutating func serve(_ frame: Frame) {
        switch frame.kind {
        case .heartbeat:
            return
        case .result, .failure:
            let answeredAt = monotonicNanoseconds()
            guard let inFlight = slot.takeInFlight(attempt: frame.requestID, now: answeredAt) else {
                // Not an attempt in flight here: superseded, or never sent. Dropped.
                logger.debug("answer dropped", metadata: ["slot": "\(index)", "request": "\(frame.requestID)"])
                return
            }
            let request = inFlight.request
            let nanoseconds = answeredAt - min(inFlight.startedAt, answeredAt)
            let result: Result<BatchAnswer, ProcessPoolError>
            if frame.kind == .result {
                guard let outputs = try? frame.decode(Outputs.self), outputs.count == request.count else {
                    return violation("malformed result", answering: inFlight.attempt)
                }
                result = .success(BatchAnswer(outputs: outputs.outputs, nanoseconds: nanoseconds))
                supervisor.metrics?.batchEnded(answered: request.count, nanoseconds: nanoseconds)
            } else {
                guard let failure = try? frame.decode(JobFailure.self) else { return violation("malformed failure", answering: inFlight.attempt) }
                if failure.errorType == WorkerProcess.unknownJobType {
                    result = .failure(request.error(.unknownJob))
                } else {
                    result = .failure(request.error(.jobFailed(type: failure.errorType, message: failure.message), offset: failure.index))
                }
                supervisor.metrics?.batchEnded(answered: nil, nanoseconds: nanoseconds)
            }
            switch supervisor.answer(index, attempt: frame.requestID, result) {
            case .dropped:
                return
            case .resolved(let resolution, let next):
                spinUntil = monotonicNanoseconds() + supervisor.configuration.spinNanoseconds
                if case .send = next {
                    perform(next)  // keep the worker busy first
                    supervisor.resume(resolution)
                } else {
                    supervisor.resume(resolution)
                    perform(next)
                }
            }
        case .hello, .welcome, .reject, .submit, .goodbye:
            violation("unexpected \(frame.kind) frame")
        }
    }

    /// The worker broke the protocol; when it did so in answering batch `answering` (taken out of
    /// those in flight already), that batch is the one charged.
    private mutating func violation(_ detail: String, answering: UInt64? = nil) {
        lost(.protocolViolation(detail), charging: answering)
    }

    /// Heartbeats out; a silent worker, a batch past its deadline, a worker over its memory limit.
    private mutating func checkClock(now: UInt64) {
        guard let current = link else { return }
        if now >= nextHeartbeat {
            // Queued behind a full pipe, it goes out when this thread's next poll sees room.
            let frame = heartbeatFrame
            _ = frame.withUnsafeBytes { slot.send(header: $0, frame: frame, generation: generation, batch: nil) }
            nextHeartbeat = now + interval
        }
        if now >= lastReceived &+ lostAfter {
            // A last look first: a heartbeat that came as the poll timed out is not a silence.
            var descriptor = pollfd(fd: current.inputDescriptor, events: Int16(POLLIN), revents: 0)
            if poll(&descriptor, 1, 0) > 0 {
                readInput()
                if link == nil || now < lastReceived &+ lostAfter { return }
            }
            logger.warning("worker silent", metadata: ["slot": "\(index)", "pid": "\(current.processID.map(String.init) ?? "-")", "silent_ms": "\((now - lastReceived) / 1_000_000)"])
            lost(.workerLost)
            return
        }
        guard let inFlight = slot.running else { return }
        if let deadline = inFlight.deadline, now >= deadline, supervisor.confirmKill(index, attempt: inFlight.attempt) {
            lost(.timedOut)
            return
        }
        if let limit = supervisor.configuration.memoryLimit, let resident = current.residentBytes(), resident > limit,
           supervisor.confirmKill(index, attempt: inFlight.attempt) {
            lost(.resourceLimit)
        }
    }
}
