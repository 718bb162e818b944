#if canImport(Glibc)
import Glibc
#endif

/// GNU parallel's scheduling rules without processes, files or a clock: events in (may a job
/// start, one started, one ended, time passed, a signal), decisions out (start in slot N,
/// retry, stop, send this signal to that job, print these jobs now). The runner does the I/O and
/// passes the time in; tests drive it with made-up times, in microseconds.
///
/// The rules: at most `slots` jobs; at least `--delay` between starts; the lowest free slot
/// (`{%}`); a failing job runs again until `--retries` attempts; `--halt` (GNU's
/// `should_we_halt`); `--timeout` in seconds or N % of the median run time of the jobs that
/// succeeded (once three have); the terminate sequence (`--term-seq`), its last signal repeated
/// until the job is gone; `-k` releases outputs in input order; SIGINT/SIGTERM stop everything,
/// SIGHUP only starts.
struct RunScheduler: Sendable {
    /// The rules one run follows.
    struct Rules: Sendable, Equatable {
        var slots: Int
        var delay: Double?
        /// Attempts a failing job gets in all (`--retries`).
        var attempts: Int
        var halt: RunOptions.Halt?
        var timeout: RunOptions.Timeout?
        var terminateSequence: [RunOptions.TerminateStep]
        var keepOrder: Bool

        init(slots: Int, delay: Double? = nil, attempts: Int = 1, halt: RunOptions.Halt? = nil, timeout: RunOptions.Timeout? = nil,
             terminateSequence: [RunOptions.TerminateStep] = RunOptions().terminateSequence, keepOrder: Bool = false) {
            self.slots = slots
            self.delay = delay
            self.attempts = attempts
            self.halt = halt
            self.timeout = timeout
            self.terminateSequence = terminateSequence
            self.keepOrder = keepOrder
        }

        /// The rules `options` set, with `slots` job slots.
        init(options: RunOptions, slots: Int) {
            self.init(slots: slots, delay: options.delay, attempts: options.retries, halt: options.halt, timeout: options.timeout,
                      terminateSequence: options.terminateSequence, keepOrder: options.keepOrder)
        }
    }

    /// Whether a job may start now.
    enum Start: Equatable {
        /// Yes, in this slot.
        case now(slot: Int)
        /// Not before this time (`--delay`).
        case at(Double)
        /// No: every slot is taken, or the run is stopping.
        case no
    }

    /// What became of a job that ended.
    struct Ending: Equatable {
        /// It failed and has attempts left: run it again (its output is not printed).
        var retry = false
        /// It failed (a status, a signal, or the time-out).
        var failed = false
        /// It was killed for running past `--timeout`.
        var timedOut = false
        /// This ending reached `--halt`: how the run stops.
        var halts: RunOptions.Halt.When?
    }

    /// A signal to send to a running job.
    struct Kill: Equatable {
        var sequence: Int
        var signal: Int32
        /// Whether this is the first signal of a time-out (GNU warns then).
        var timedOut = false
    }

    private struct Timers: Sendable {
        var deadline: Double?
        var nextSignalAt: Double?
        var step = 0
        var timedOut = false
    }

    private(set) var rules: Rules
    private var usedSlots: Set<Int> = []
    private var timers: [Int: Timers] = [:]
    private var lastStart = -Double.infinity
    private var runtimes: [Double] = []
    /// Jobs started (retries not counted), failed and succeeded after their last attempt.
    private(set) var started = 0
    private(set) var failed = 0
    private(set) var succeeded = 0
    /// `--halt` reached (or an error that ends the run): how it stops and its status.
    private(set) var halting: (when: RunOptions.Halt.When, status: Int32)?
    /// SIGINT or SIGTERM (or SIGPIPE for a closed stdout), once caught.
    private(set) var caughtSignal: Int32?
    /// SIGHUP came: no new jobs; the running ones finish.
    private(set) var hangup = false
    /// `-k`: the next sequence number to print, and those that ended before their turn.
    private(set) var nextToPrint = 1
    private var releasedEarly: Set<Int> = []

    init(rules: Rules) { self.rules = rules }

    /// Whether new jobs are no longer started.
    var stopping: Bool { halting != nil || caughtSignal != nil || hangup }

    // MARK: Starting

    /// Whether a job may start at `now` with `running` jobs running.
    func mayStart(now: Double, running: Int) -> Start {
        guard !stopping, running < rules.slots else { return .no }
        if let delay = rules.delay, now - lastStart < delay { return .at(lastStart + delay) }
        var slot = 1
        while usedSlots.contains(slot) { slot += 1 }
        return .now(slot: slot)
    }

    /// A job started in `slot` at `now`: its slot is taken, its time-out set.
    mutating func started(sequence: Int, slot: Int, attempt: Int, now: Double) {
        usedSlots.insert(slot)
        lastStart = now
        if attempt == 1 { started += 1 }
        var deadline: Double?
        switch rules.timeout {
        case .seconds(let seconds): deadline = now + seconds
        case .percentOfMedian(let percent) where runtimes.count >= 3: deadline = now + median(runtimes) * percent / 100
        default: break
        }
        timers[sequence] = Timers(deadline: deadline)
    }

    /// A job could not be started at all (no such program): it failed, as GNU's 127.
    mutating func couldNotStart(attempt: Int) {
        if attempt == 1 { started += 1 }
        failed += 1
    }

    /// Fewer slots from now on (the process is out of file descriptors).
    mutating func limitSlots(to slots: Int) { rules.slots = max(1, min(rules.slots, slots)) }

    /// `-j FILE` changed: this many slots from now on (running jobs are not stopped).
    mutating func setSlots(_ slots: Int) { rules.slots = max(1, slots) }

    // MARK: Ending

    /// A job ended with `exit` or `signal` after `runtime` seconds; `total` is the number of jobs
    /// when known (for `--halt …%`); `attempts` is this job's own `--retries` when it has one
    /// (`--retries {//}`), else the run's.
    mutating func ended(sequence: Int, slot: Int, attempt: Int, exit: Int32, signal: Int32, runtime: Double, total: Int?,
                        attempts: Int? = nil) -> Ending {
        usedSlots.remove(slot)
        let timedOut = timers.removeValue(forKey: sequence)?.timedOut ?? false
        var ending = Ending(failed: exit != 0 || signal != 0 || timedOut, timedOut: timedOut)
        if ending.failed, attempt < (attempts ?? rules.attempts), !stopping {
            ending.retry = true
            return ending
        }
        if ending.failed { failed += 1 } else { succeeded += 1; runtimes.append(runtime) }
        if halting == nil, let halt = rules.halt,
           let status = Runner.haltStatus(halt, failed: failed, succeeded: succeeded, total: total, failedNow: ending.failed, exit: exit, signal: signal) {
            halting = (halt.when, status)
            ending.halts = halt.when
        }
        return ending
    }

    /// An error that ends the run as GNU's do: no new jobs, running ones finish, status 255.
    mutating func stopWithError() {
        if halting?.status != 255 { halting = (.soon, 255) }
    }

    // MARK: -k

    /// Job `sequence` is done (or will never print): the sequences whose output may be printed
    /// now, in order. Without `-k`, just that one.
    mutating func release(_ sequence: Int) -> [Int] {
        guard rules.keepOrder else { return [sequence] }
        guard sequence >= nextToPrint else { return [] }
        releasedEarly.insert(sequence)
        var ready: [Int] = []
        while releasedEarly.remove(nextToPrint) != nil {
            ready.append(nextToPrint)
            nextToPrint += 1
        }
        return ready
    }

    // MARK: Time and signals

    /// The signals due at `now`: time-outs that expired, and the next steps of the terminate
    /// sequences under way.
    mutating func advance(now: Double) -> [Kill] {
        var kills: [Kill] = []
        for sequence in timers.keys.sorted() {
            guard var timer = timers[sequence] else { continue }
            var startsTimeOut = false
            if !timer.timedOut, timer.nextSignalAt == nil, let deadline = timer.deadline, now >= deadline {
                timer.timedOut = true
                timer.nextSignalAt = now
                startsTimeOut = true
            }
            if let due = timer.nextSignalAt, now >= due {
                let sequenceSteps = rules.terminateSequence
                let step = sequenceSteps[min(timer.step, sequenceSteps.count - 1)]
                kills.append(Kill(sequence: sequence, signal: step.signal, timedOut: startsTimeOut))
                timer.step += 1
                timer.nextSignalAt = now + max(step.wait, 0.001)
            }
            timers[sequence] = timer
        }
        return kills
    }

    /// Puts every running job on the terminate sequence; returns the first signals.
    mutating func terminateAll(now: Double) -> [Kill] {
        for sequence in timers.keys where timers[sequence]?.nextSignalAt == nil { timers[sequence]?.nextSignalAt = now }
        return advance(now: now)
    }

    /// A signal reached the run: SIGHUP stops starting (returns no kills); any other stops
    /// starting and terminates every job. Only the first counts.
    mutating func received(signal: Int32, now: Double) -> [Kill] {
        guard caughtSignal == nil else { return [] }
        if signal == SIGHUP {
            hangup = true
            return []
        }
        caughtSignal = signal
        return terminateAll(now: now)
    }

    /// When something is next due: a signal step, a time-out, or (`--delay`) the next start
    /// while a start is wanted.
    func nextWake(now: Double, running: Int, wantsStart: Bool) -> Double? {
        var wake = Double.infinity
        for timer in timers.values {
            if let due = timer.nextSignalAt { wake = min(wake, due) } else if let deadline = timer.deadline { wake = min(wake, deadline) }
        }
        if wantsStart, case .at(let time) = mayStart(now: now, running: running) { wake = min(wake, time) }
        return wake.isFinite ? wake : nil
    }

    /// The run's exit status: 128 + a caught signal, the `--halt` status, or the failures (GNU's).
    func exitStatus() -> Int32 {
        if let caughtSignal { return 128 + caughtSignal }
        if let halting { return halting.status }
        return Runner.finalStatus(rules.halt, failed: failed, total: started)
    }
}
