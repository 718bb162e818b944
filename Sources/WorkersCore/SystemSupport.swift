#if canImport(Glibc)
import Glibc
#endif
import CWorkersShims


/// CLOCK_MONOTONIC in nanoseconds: comparable across the processes of one machine.
package func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

/// CLOCK_MONOTONIC in seconds.
package func monotonicSeconds() -> Double {
    Double(monotonicNanoseconds()) / 1e9
}

/// Calls `body` with `strings` as a NULL-terminated array of C strings (argv, envp), freed after.
package func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    withCStrings(bytes: strings.map { Array($0.utf8) }, body)
}

/// Calls `body` with each byte string as a NUL-terminated C string in a NULL-terminated array,
/// freed after: for arguments that are bytes, not text.
package func withCStrings<R>(bytes strings: [[UInt8]], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    let pointers = strings.map { bytes -> UnsafeMutablePointer<CChar>? in
        let pointer = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count + 1)
        for (index, byte) in bytes.enumerated() { pointer[index] = CChar(bitPattern: byte) }
        pointer[bytes.count] = 0
        return pointer
    } + [nil]
    defer { for pointer in pointers { pointer?.deallocate() } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}

/// This machine's name (`gethostname`), or "localhost" when it has none.
package let hostName: String = {
    var name = [CChar](repeating: 0, count: 256)
    guard gethostname(&name, name.count) == 0 else { return "localhost" }
    return String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}()

/// `program` as an executable path: as given when it has a slash, else the first match on PATH.
package func executablePath(_ program: String) -> String? {
    if program.contains("/") { return access(program, X_OK) == 0 ? program : nil }
    let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin"
    return path.split(separator: ":").map { "\($0)/\(program)" }.first { access($0, X_OK) == 0 }
}

/// How a child process ended, from `waitpid`'s raw status: its exit code, or the signal that
/// ended it. The one decoder of the package.
package struct WaitStatus: Equatable, Sendable, CustomStringConvertible {
    /// The exit code, when it exited.
    package var exitCode: Int32?
    /// The signal, when one ended it.
    package var signal: Int32?

    package init(raw: Int32) {
        if raw & 0x7F == 0 { exitCode = (raw >> 8) & 0xFF } else { signal = raw & 0x7F }
    }

    /// GNU's joblog columns: the exit code and the signal, 0 for the one that does not apply.
    package var exitAndSignal: (exit: Int32, signal: Int32) { (exitCode ?? 0, signal ?? 0) }

    /// `exit 3`, `signal 9`.
    package var description: String { signal.map { "signal \($0)" } ?? "exit \(exitCode ?? 0)" }
}

/// Waits for child `pid` to end (EINTR retried); its raw status, or nil when it is not our
/// child (ECHILD).
@discardableResult
package func waitForExit(_ pid: pid_t) -> Int32? {
    var status: Int32 = 0
    while true {
        if waitpid(pid, &status, 0) == pid { return status }
        if errno != EINTR { return nil }
    }
}

/// Makes a system call as if no signal ever interrupted it: calls `call` again while it fails
/// with EINTR, and returns its result otherwise (-1 with `errno` set for any other failure). The
/// package's one EINTR loop for calls that return -1 on failure: read, write, pread, accept,
/// flock, poll with no deadline.
@inline(__always)
package func retryingInterrupts<Result: BinaryInteger>(_ call: () -> Result) -> Result {
    while true {
        let result = call()
        if result != -1 || errno != EINTR { return result }
    }
}

/// `read(2)` with EINTR retried: the bytes read, 0 at the end, -1 on an error (errno set).
package func readRetryingInterrupts(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) -> Int {
    retryingInterrupts { read(fd, buffer.baseAddress, buffer.count) }
}

/// Writes all of `bytes` to blocking `fd`, retrying short writes and EINTR; `false` on an
/// error (errno set). The one write loop of the package for blocking descriptors.
@discardableResult
package func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
    var offset = 0
    while offset < bytes.count {
        let written = retryingInterrupts { write(fd, bytes.baseAddress! + offset, bytes.count - offset) }
        if written < 0 { return false }
        offset += written
    }
    return true
}

/// Blocks the calling thread for `nanoseconds`, resuming the sleep after a signal: a blocking
/// call, as `time.sleep` is, which holds its thread.
package func sleepThread(nanoseconds: UInt64) {
    var request = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0, errno == EINTR { request = remaining }
}

/// Waits until `descriptor` is ready for `events` (POLLIN, POLLOUT), a signal interrupts, or
/// the monotonic `deadline` (nanoseconds) passes; `false` once the deadline has passed. Callers
/// loop on their own condition, so an interrupted wait is simply another turn.
package func waitUntilReady(_ descriptor: Int32, for events: Int32, until deadline: UInt64) -> Bool {
    let now = monotonicNanoseconds()
    guard now < deadline else { return false }
    var entry = pollfd(fd: descriptor, events: Int16(events), revents: 0)
    _ = poll(&entry, 1, Int32(min((deadline - now + 999_999) / 1_000_000, 10_000)))
    return true
}

/// A file descriptor owned by whoever holds this object: closed exactly once, when the last
/// holder lets it go. There is no -1: a descriptor that could not be opened is `nil`, and
/// setting an optional that holds one to `nil` closes it (when it was the last holder).
package final class OwnedDescriptor {
    /// The descriptor, for the system calls that take one. Valid while this object lives.
    package let raw: Int32

    /// Takes ownership of `raw`; `nil` when it is negative (a failed open, `errno` untouched).
    package init?(_ raw: Int32) {
        guard raw >= 0 else { return nil }
        self.raw = raw
    }

    deinit {
        // A close in the middle of error handling must not change the errno being reported.
        let saved = errno
        close(raw)
        errno = saved
    }
}

/// Two ends of a pipe made with `O_CLOEXEC`, or `nil` with `errno` set.
package func ownedPipe() -> (read: OwnedDescriptor, write: OwnedDescriptor)? {
    var ends: [Int32] = [-1, -1]
    let made = cworkers_pipe_cloexec(&ends)
    guard made == 0 else { errno = -made; return nil }
    guard let read = OwnedDescriptor(ends[0]), let write = OwnedDescriptor(ends[1]) else { return nil }
    return (read, write)
}
