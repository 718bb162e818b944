#if canImport(Glibc)
import Glibc
#endif
import WorkersCore
import WorkersWire

/// Blocking frame reads from a file descriptor, with an optional deadline: the worker's side of
/// its channel (writes go through ``FrameWriter``).
struct FrameReader {
    enum ReadOutcome {
        case frame(Frame)
        case endOfFile
        case timedOut
        case violation(WireError)
    }

    let readFD: Int32
    let maxFrameSize: Int
    private var decoder: FrameDecoder
    private var buffer = [UInt8](repeating: 0, count: 64 * 1024)

    init(readFD: Int32, maxFrameSize: Int) {
        self.readFD = readFD
        self.maxFrameSize = maxFrameSize
        decoder = FrameDecoder(maxFrameSize: maxFrameSize)
    }

    /// Reads the next frame, waiting at most until `deadline` (monotonic nanoseconds) when set.
    ///
    /// With `spin`, it first polls without sleeping for up to that many nanoseconds, yielding the
    /// CPU between polls: an answer that comes within a few tens of microseconds is then read
    /// without the wake-up a blocked thread pays (measured: a wake-up costs about 10–20 µs here).
    mutating func read(deadline: UInt64? = nil, spin: UInt64 = 0) -> ReadOutcome {
        var spinUntil = spin > 0 ? monotonicNanoseconds() + spin : 0
        while true {
            do {
                if let frame = try decoder.next() { return .frame(frame) }
            } catch {
                return .violation(error)
            }
            if spinUntil > 0 {
                var descriptor = pollfd(fd: readFD, events: Int16(POLLIN), revents: 0)
                while poll(&descriptor, 1, 0) == 0 {
                    if monotonicNanoseconds() >= spinUntil { break }
                    sched_yield()
                }
                spinUntil = 0
            }
            if let deadline {
                let now = monotonicNanoseconds()
                if now >= deadline { return .timedOut }
                var descriptor = pollfd(fd: readFD, events: Int16(POLLIN), revents: 0)
                let milliseconds = Int32(min((deadline - now + 999_999) / 1_000_000, UInt64(Int32.max)))
                let ready = poll(&descriptor, 1, milliseconds)
                if ready == 0 { continue }  // re-check the deadline
                if ready < 0, errno == EINTR { continue }
            }
            let count = buffer.withUnsafeMutableBytes { Glibc.read(readFD, $0.baseAddress, $0.count) }
            if count > 0 {
                decoder.feed(buffer[0..<count])
            } else if count == 0 {
                return .endOfFile
            } else if errno != EINTR {
                return .endOfFile
            }
        }
    }
}

