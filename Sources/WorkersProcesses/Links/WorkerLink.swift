#if canImport(Glibc)
import Glibc
#endif
import WorkersCore

/// One worker's connection, whatever carries it: pipes to a child process here; a TCP link to a
/// remote agent, or a launcher command's stdin and stdout, in the placements built on this seam.
///
/// The supervisor frames, sends and reads bytes on the link's two descriptors itself (it sets
/// them non-blocking and polls them from the worker slot's thread) and never touches a process id:
/// ending a worker goes through the link. Each method that releases the link closes both
/// descriptors; the supervisor stops using them before it calls one.
package protocol WorkerLink: AnyObject, Sendable {
    /// Frames from the worker arrive here; end of stream means the worker is gone.
    var inputDescriptor: Int32 { get }
    /// Frames to the worker go here (it may be `inputDescriptor` for a socket).
    var outputDescriptor: Int32 { get }
    /// The worker's process on this machine, for ``ProcessPool/WorkerInfo`` and reports; `nil`
    /// when it lives elsewhere.
    var processID: Int32? { get }
    /// The worker's resident memory in bytes, where the link can see it.
    func residentBytes() -> Int?
    /// The worker closed its end: wait for it to end, release the link, and say how it ended.
    func reap() -> ProcessPoolError.Code
    /// Ends the worker now (for a process: SIGKILL to its process group), releases the link,
    /// and says how it ended.
    @discardableResult
    func terminate() -> ProcessPoolError.Code
    /// Says goodbye, waits up to `grace` for the worker to end by itself, ends it if it did
    /// not, and releases the link.
    func stop(grace: Duration)
    /// After its end of stream: whether the worker was retired on purpose (its node drained for
    /// a walltime or a `SIGTERM`), so the batch it held runs again without counting an attempt.
    var endedGracefully: Bool { get }
    /// Writes `header` then `body` toward the worker, as `writev` on ``outputDescriptor`` does:
    /// returns the bytes taken (0 when the descriptor is full, -1 when the worker is gone). A
    /// link that carries frames itself takes them whole, in order, from any thread.
    func send(header: UnsafeRawBufferPointer, body: UnsafeRawBufferPointer) -> Int
}

extension WorkerLink {
    package var endedGracefully: Bool { false }

    package func send(header: UnsafeRawBufferPointer, body: UnsafeRawBufferPointer) -> Int {
        var vectors = (
            iovec(iov_base: UnsafeMutableRawPointer(mutating: header.baseAddress), iov_len: header.count),
            iovec(iov_base: UnsafeMutableRawPointer(mutating: body.baseAddress), iov_len: body.count)
        )
        return withUnsafeMutableBytes(of: &vectors) { pointer in
            let count = retryingInterrupts { writev(outputDescriptor, pointer.baseAddress!.assumingMemoryBound(to: iovec.self), body.count > 0 ? 2 : 1) }
            return count < 0 ? (errno == EAGAIN ? 0 : -1) : count
        }
    }
}

/// Starts workers for a pool's slots: the other half of the seam.
package protocol WorkerLauncher: Sendable {
    /// Starts the worker for slot `slot` and returns its link, before any handshake.
    ///
    /// Called on the slot's own long-lived thread (a child's parent-death signal is tied to the
    /// thread that spawned it), and again on the same thread for every replacement.
    func launch(slot: Int) throws(ProcessPoolError) -> any WorkerLink
}
