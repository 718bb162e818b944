import Synchronization
import WorkersCore

/// A global interpreter lock that behaves as CPython's (`Python/ceval_gil.c`, 3.2 and later), for
/// threads that opt in: a real lock the lab's threads contend on, not arithmetic on expected times.
///
/// - One holder at a time. `take` waits on a condition variable in slices of the switch interval;
///   a waiter whose slice times out while nobody switched sets the drop request.
/// - The holder calls ``checkpoint(_:)`` at fine-grained points of its work (CPython checks at
///   loop back-edges and calls); seeing the request, it drops the lock and — forced switching —
///   waits until another thread has taken it, then queues again as an ordinary waiter.
/// - No fairness: `signal` wakes one waiter and the OS picks which.
/// - Blocking I/O releases at once (``releaseForIO(_:)``) and must take it back afterwards
///   (``reacquireAfterIO(_:)``), which is where the convoy effect comes from: an I/O thread behind
///   a CPU thread waits about one interval each time.
///
/// Threads are named by a small integer (`thread`), which the timeline also uses.
public final class SimulatedGIL: @unchecked Sendable {  // @unchecked: state is guarded by `lock`; `dropRequest` is atomic.
    /// The switch interval.
    public let interval: Duration
    private let intervalNanoseconds: Int64
    private let lock = PthreadLock()
    private let released: PthreadCondition
    private let switched: PthreadCondition
    private var locked = false
    private var lastHolder = -1
    private var switchNumber = 0
    /// Set by a waiter that timed out; read by the holder at every checkpoint without the lock.
    private let dropRequest = Atomic<Bool>(false)
    private let recorder: TimelineRecorder?

    /// Hand-offs so far (the holder changed).
    public var switches: Int { lock.withLock { switchNumber } }

    /// - Parameters:
    ///   - interval: the switch interval (CPython: `sys.setswitchinterval`, default 5 ms).
    ///   - recorder: where to record each thread's running and GIL-waiting spans.
    public init(interval: Duration = .milliseconds(5), recorder: TimelineRecorder? = nil) {
        precondition(interval > .zero, "interval must be positive (got \(interval))")
        self.interval = interval
        intervalNanoseconds = max(1_000, interval.saturatingNanoseconds)
        self.recorder = recorder
        released = PthreadCondition(lock: lock)
        switched = PthreadCondition(lock: lock)
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
        locked = true
        if lastHolder != thread {
            lastHolder = thread
            switchNumber += 1
        }
        dropRequest.store(false, ordering: .relaxed)
        switched.broadcast()  // FORCE_SWITCHING: the thread that dropped may go on
        lock.unlock()
        if let recorder, let waitStart {
            let now = recorder.now()
            if now - waitStart > 0.000_02 { recorder.record(thread: thread, task: task, from: waitStart, to: now, state: .gilWait) }
            recorder.begin(thread: thread, task: task, at: now)
        }
    }

    /// Drops the lock. `forced` (the holder saw a drop request) waits until another thread has
    /// taken it, so the dropping thread cannot win the race to take it straight back.
    public func drop(_ thread: Int, task: Int = 0, forced: Bool = false) {
        recorder?.end(thread: thread, task: task, state: .running)
        lock.lock()
        lastHolder = thread
        locked = false
        released.signal()
        if forced {
            // CPython waits once on switch_cond; waiting while nobody has taken it yet is the same
            // without spurious wake-ups. The bound keeps a lone thread from waiting forever.
            var waited: Int64 = 0
            while lastHolder == thread, !locked, waited < intervalNanoseconds * 4 {
                _ = switched.wait(nanoseconds: intervalNanoseconds)
                waited += intervalNanoseconds
            }
        }
        lock.unlock()
    }

    /// Where the holder honours a drop request: cheap (one relaxed atomic load) when none is set.
    @inline(__always)
    public func checkpoint(_ thread: Int, task: Int = 0) {
        if dropRequest.load(ordering: .relaxed) {
            drop(thread, task: task, forced: true)
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
