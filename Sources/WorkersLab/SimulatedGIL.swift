import Synchronization
import WorkersCore

/// A global interpreter lock that behaves as CPython's (`Python/ceval_gil.c`, 3.2 and later), for
/// threads that opt in: a real lock the lab's threads contend on, not arithmetic on expected times.
///
/// - One holder at a time. `take` waits on a condition variable in slices of the switch interval;
///   a waiter whose slice times out while nobody switched sets the drop request.
/// - The holder calls ``checkpoint(_:)`` at fine-grained points of its work (CPython checks at
///   loop back-edges and calls, tens of nanoseconds apart: ``Kernel/gilCheckpointEvery``);
///   seeing the request, it drops the lock and — forced switching — waits until another thread
///   has taken it, then queues again as an ordinary waiter.
/// - No fairness: `signal` wakes one waiter and the OS picks which; a waiter that is awake at
///   that moment (the one that just asked for the switch) usually wins over one asleep.
/// - Blocking I/O releases at once (``releaseForIO(_:)``) and must take it back afterwards
///   (``reacquireAfterIO(_:)``), which is where the convoy effect comes from: an I/O thread behind
///   one CPU thread waits about one interval each time; behind several it also loses hand-offs
///   to the CPU threads that ask for them, and waits several.
///
/// Threads are named by a small integer (`thread`), which the timeline also uses.
public final class SimulatedGIL: @unchecked Sendable {  // @unchecked: `locked` and `switchNumber` are guarded by `lock`; the rest is atomic.
    /// The switch interval.
    public let interval: Duration
    private let intervalNanoseconds: Int64
    /// CPython's `gil->mutex` and `gil->cond`: the lock's state, and the wait for it.
    private let lock = PthreadLock(spinning: false)
    private let released: PthreadCondition
    /// CPython's `switch_mutex` and `switch_cond` (FORCE_SWITCHING): a thread that dropped the lock
    /// on request waits here until another thread has taken it. A lock of its own, as in
    /// CPython: with one lock for both, the thread woken to take the GIL would queue behind the
    /// dropper on its way into this wait, and the hand-offs would come in another order.
    private let switchLock = PthreadLock(spinning: false)
    private let switched: PthreadCondition
    private var locked = false
    private var switchNumber = 0
    /// The thread that took the lock last (CPython's `last_holder`), read without the lock.
    private let lastHolder = Atomic<Int>(-1)
    /// Set by a waiter that timed out; read by the holder at every checkpoint without the lock.
    private let dropRequest = Atomic<Bool>(false)
    private let recorder: TimelineRecorder?

    /// Hand-offs so far (the holder changed).
    public var switches: Int { lock.withLock { switchNumber } }

    /// - Parameters:
    ///   - interval: the switch interval (CPython: `sys.setswitchinterval`, default 5 ms).
    ///   - recorder: where to record each thread's running and GIL-waiting spans. Recording
    ///     costs a little at every hand-off, which delays them; leave it out where only the
    ///     hand-offs' timing is measured.
    public init(interval: Duration = .milliseconds(5), recorder: TimelineRecorder? = nil) {
        precondition(interval > .zero, "interval must be positive (got \(interval))")
        self.interval = interval
        intervalNanoseconds = max(1_000, interval.saturatingNanoseconds)
        self.recorder = recorder
        released = PthreadCondition(lock: lock)
        switched = PthreadCondition(lock: switchLock)
    }

    /// Takes the lock for `thread`, blocking as CPython's `take_gil` does.
    public func take(_ thread: Int, task: Int = 0) {
        let waitStart = recorder?.now()
        lock.lock()
        while locked {
            let saved = switchNumber
            let signalled = released.wait(nanoseconds: intervalNanoseconds)
            if !signalled, locked, switchNumber == saved {
                dropRequest.store(true, ordering: .relaxed)  // "please yield"
            }
        }
        switchLock.lock()
        locked = true
        if lastHolder.load(ordering: .relaxed) != thread {
            lastHolder.store(thread, ordering: .relaxed)
            switchNumber += 1
        }
        switched.signal()  // FORCE_SWITCHING: the thread that dropped may go on
        switchLock.unlock()
        dropRequest.store(false, ordering: .relaxed)
        lock.unlock()
        if let recorder, let waitStart {
            let now = recorder.now()
            if now - waitStart > 0.000_02 { recorder.record(thread: thread, task: task, from: waitStart, to: now, state: .gilWait) }
            recorder.begin(thread: thread, task: task, at: now)
        }
    }

    /// Drops the lock, as CPython's `drop_gil`: when a drop request is pending (the holder was
    /// asked to yield), it then waits until another thread has taken the lock, so the dropping
    /// thread cannot win the race to take it straight back.
    public func drop(_ thread: Int, task: Int = 0) {
        recorder?.end(thread: thread, task: task, state: .running)
        lastHolder.store(thread, ordering: .relaxed)
        lock.lock()
        locked = false
        released.signal()
        lock.unlock()
        guard dropRequest.load(ordering: .relaxed) else { return }
        switchLock.lock()
        // CPython waits once on switch_cond; waiting while nobody has taken it yet is the same
        // without spurious wake-ups. The bound keeps a lone thread from waiting forever.
        if lastHolder.load(ordering: .relaxed) == thread {
            dropRequest.store(false, ordering: .relaxed)
            var waited: Int64 = 0
            while lastHolder.load(ordering: .relaxed) == thread, waited < intervalNanoseconds * 4 {
                _ = switched.wait(nanoseconds: intervalNanoseconds)
                waited += intervalNanoseconds
            }
        }
        switchLock.unlock()
    }

    /// Where the holder honours a drop request: cheap (one relaxed atomic load) when none is set.
    @inline(__always)
    public func checkpoint(_ thread: Int, task: Int = 0) {
        if dropRequest.load(ordering: .relaxed) {
            drop(thread, task: task)
            take(thread, task: task)
        }
    }

    /// Releases the lock before blocking I/O or a sleep (`Py_BEGIN_ALLOW_THREADS`): at once.
    public func releaseForIO(_ thread: Int, task: Int = 0) {
        drop(thread, task: task)
    }

    /// Takes the lock back after blocking I/O (`Py_END_ALLOW_THREADS`): an ordinary `take`.
    public func reacquireAfterIO(_ thread: Int, task: Int = 0) {
        take(thread, task: task)
    }
}
