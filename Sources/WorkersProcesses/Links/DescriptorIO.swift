#if canImport(Glibc)
import Glibc
#endif
import WorkersCore
import WorkersWire

/// Frame reads and whole writes on a descriptor with a deadline (monotonic nanoseconds): the
/// handshake, a goodbye, draining a worker that is ending, and the worker's blocking writes
/// (a blocking descriptor never says EAGAIN, so the deadline is then never looked at).
enum DescriptorIO {
    enum ReadOutcome {
        case frame(Frame)
        case endOfStream
        case timedOut
        case violation(WireError)
    }

    /// Reads from non-blocking `descriptor` until `decoder` has a frame, the stream ends, or
    /// `deadline` (monotonic nanoseconds) passes.
    static func read(_ descriptor: Int32, into decoder: inout FrameDecoder, until deadline: UInt64) -> ReadOutcome {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            do {
                if let frame = try decoder.next() { return .frame(frame) }
            } catch {
                return .violation(error)
            }
            let count = buffer.withUnsafeMutableBytes { readRetryingInterrupts(descriptor, into: $0) }
            if count > 0 {
                decoder.feed(buffer[0..<count])
                continue
            }
            if count == 0 { return .endOfStream }
            guard errno == EAGAIN else { return .endOfStream }
            guard waitUntilReady(descriptor, for: POLLIN, until: deadline) else { return .timedOut }
        }
    }

    /// Writes all of `bytes` to non-blocking `descriptor`, waiting for room until `deadline`.
    static func write(_ bytes: [UInt8], to descriptor: Int32, until deadline: UInt64) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let count = bytes.withUnsafeBytes { bytes in retryingInterrupts { Glibc.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset) } }
            if count >= 0 {
                offset += count
                continue
            }
            guard errno == EAGAIN else { return false }
            guard waitUntilReady(descriptor, for: POLLOUT, until: deadline) else { return false }
        }
        return true
    }

    /// Reads and drops what comes on non-blocking `descriptor` until the peer closes it (`true`)
    /// or `deadline` passes (`false`). Nothing is decoded: whatever an ending peer sends is moot.
    static func waitForEndOfStream(_ descriptor: Int32, until deadline: UInt64) -> Bool {
        var scratch = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = scratch.withUnsafeMutableBytes { readRetryingInterrupts(descriptor, into: $0) }
            if count == 0 { return true }
            if count > 0 { continue }
            guard errno == EAGAIN else { return true }
            guard waitUntilReady(descriptor, for: POLLIN, until: deadline) else { return false }
        }
    }

}
