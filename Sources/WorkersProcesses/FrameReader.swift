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
                // Nothing yet, or a signal: re-check the deadline.
                guard poll(&descriptor, 1, milliseconds) > 0 else { continue }
            }
            let count = buffer.withUnsafeMutableBytes { readRetryingInterrupts(readFD, into: $0) }
            guard count > 0 else { return .endOfFile }
            decoder.feed(buffer[0..<count])
        }
    }
}

