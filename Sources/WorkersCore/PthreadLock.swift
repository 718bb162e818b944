#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CWorkersShims

/// A non-recursive pthread mutex.
///
/// The package guards shared state with this rather than `Synchronization.Mutex` because
/// ThreadSanitizer does not see the futex behind `Mutex` on Linux and reports races inside
/// `withLock` (measured with Swift 6.3.1); a pthread mutex is intercepted and reported clean.
package final class PthreadLock: @unchecked Sendable {  // @unchecked: the pthread mutex is the synchronisation.
    package let mutex: UnsafeMutablePointer<pthread_mutex_t>

    /// - Parameter spinning: whether a release build spins briefly on a contended lock before it
    ///   sleeps (the default). `false` is a default pthread mutex, as C programs get: the lab's
    ///   simulated GIL uses one, as CPython's `gil->mutex` is, since who wins a hand-off depends
    ///   on how fast a waiter gets the mutex.
    package init(spinning: Bool = true) {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        var attr = pthread_mutexattr_t()
        pthread_mutexattr_init(&attr)
        #if DEBUG
        // Debug builds catch misuse (relocking, unlocking another thread's lock) as a failed
        // precondition, as swift-nio's NIOLock does.
        pthread_mutexattr_settype(&attr, Int32(PTHREAD_MUTEX_ERRORCHECK))
        #else
        // Release builds spin briefly before sleeping on a contended lock: every critical section
        // here is a few dozen instructions, and a futex sleep and wake cost microseconds.
        pthread_mutexattr_settype(&attr, spinning ? Int32(PTHREAD_MUTEX_ADAPTIVE_NP) : Int32(PTHREAD_MUTEX_NORMAL))
        #endif
        let rc = pthread_mutex_init(mutex, &attr)
        pthread_mutexattr_destroy(&attr)
        precondition(rc == 0, "pthread_mutex_init failed: \(rc)")
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    @inline(__always)
    package func lock() {
        let rc = pthread_mutex_lock(mutex)
        precondition(rc == 0, "pthread_mutex_lock failed: \(rc)")
    }

    @inline(__always)
    package func unlock() {
        let rc = pthread_mutex_unlock(mutex)
        precondition(rc == 0, "pthread_mutex_unlock failed: \(rc)")
    }

    @inline(__always)
    package func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        lock()
        defer { unlock() }
        return try body()
    }
}

/// A condition variable bound to a ``PthreadLock``, timing out against the monotonic clock.
package final class PthreadCondition: @unchecked Sendable {  // @unchecked: used only with its lock held.
    private let cond: UnsafeMutablePointer<pthread_cond_t>
    package let lock: PthreadLock

    package init(lock: PthreadLock) {
        self.lock = lock
        cond = .allocate(capacity: 1)
        cond.initialize(to: pthread_cond_t())
        let rc = cworkers_cond_init_monotonic(cond)
        precondition(rc == 0, "pthread_cond_init failed: \(rc)")
    }

    deinit {
        pthread_cond_destroy(cond)
        cond.deallocate()
    }

    /// Waits until signalled (spurious wake-ups possible). The lock must be held.
    package func wait() {
        let rc = pthread_cond_wait(cond, lock.mutex)
        precondition(rc == 0, "pthread_cond_wait failed: \(rc)")
    }

    /// Waits until signalled or `nanoseconds` pass. Returns `false` on time-out. The lock must be held.
    package func wait(nanoseconds: Int64) -> Bool {
        cworkers_cond_timedwait_ns(cond, lock.mutex, nanoseconds) != ETIMEDOUT
    }

    package func signal() { pthread_cond_signal(cond) }
    package func broadcast() { pthread_cond_broadcast(cond) }
}

/// A monotonic deadline for blocking waits that loop over spurious wake-ups.
package struct WaitDeadline: Sendable {
    private let end: ContinuousClock.Instant?

    /// `nil` waits forever. A negative timeout is a programming error.
    package init(_ timeout: Duration?, parameter: StaticString = "timeout") {
        if let timeout {
            precondition(timeout >= .zero, "\(parameter) must not be negative (got \(timeout))")
            end = ContinuousClock.now.advanced(by: timeout)
        } else {
            end = nil
        }
    }

    /// Waits on `condition` (lock held) until signalled or the deadline passes.
    /// Returns `false` when the deadline has passed.
    package func wait(on condition: PthreadCondition) -> Bool {
        guard let end else {
            condition.wait()
            return true
        }
        let remaining = ContinuousClock.now.duration(to: end)
        guard remaining > .zero else { return false }
        _ = condition.wait(nanoseconds: remaining.saturatingNanoseconds)
        return ContinuousClock.now < end
    }
}
