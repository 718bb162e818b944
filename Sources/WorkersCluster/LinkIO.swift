#if canImport(Glibc)
import Glibc
#endif
import CWorkersShims
import WorkersCore

/// Whole frames in and out of non-blocking descriptors with a deadline (monotonic nanoseconds):
/// the handshakes on both sides.
enum LinkIO {
    static func frame<M: Encodable>(_ kind: LinkFrame.Kind, channel: UInt32 = 0, message: M) throws(ClusterError) -> LinkFrame {
        do {
            return try LinkFrame(kind, channel: channel, message: message)
        } catch {
            throw ClusterError(.protocolViolation, "cannot encode a \(kind) frame: \(error)")
        }
    }

    /// The frame's bytes without a MAC: what a transcript covers.
    static func wireBytes(_ frame: LinkFrame) -> [UInt8] {
        var sealer = LinkSealer(maxFrameSize: LinkFrame.maxUnauthenticatedSize)
        var bytes: [UInt8] = []
        sealer.seal(frame, into: &bytes)
        return bytes
    }

    static func send<M: Encodable>(_ kind: LinkFrame.Kind, message: M, on descriptor: Int32, sealer: inout LinkSealer, until deadline: UInt64) throws(ClusterError) {
        try send(frame(kind, message: message), on: descriptor, sealer: &sealer, until: deadline)
    }

    static func send(_ frame: LinkFrame, on descriptor: Int32, sealer: inout LinkSealer, until deadline: UInt64) throws(ClusterError) {
        var bytes: [UInt8] = []
        sealer.seal(frame, into: &bytes)
        try writeAll(bytes, to: descriptor, until: deadline)
    }

    static func writeAll(_ bytes: [UInt8], to descriptor: Int32, until deadline: UInt64) throws(ClusterError) {
        var offset = 0
        while offset < bytes.count {
            let count = bytes.withUnsafeBytes { raw in
                retryingInterrupts { Glibc.write(descriptor, raw.baseAddress! + offset, raw.count - offset) }
            }
            if count > 0 {
                offset += count
            } else if count < 0 && errno == EAGAIN {
                guard wait(descriptor, events: Int16(POLLOUT), until: deadline) else {
                    throw ClusterError(.linkLost, "the peer stopped reading during the handshake")
                }
            } else {
                throw ClusterError(.linkLost, "the link closed during the handshake: \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Reads until `opener` has a frame.
    static func readFrame(_ descriptor: Int32, opener: inout LinkOpener, until deadline: UInt64, during step: String) throws(ClusterError) -> LinkFrame {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            if let frame = try opener.next() { return frame }
            let count = buffer.withUnsafeMutableBytes { readRetryingInterrupts(descriptor, into: $0) }
            if count > 0 {
                buffer.withUnsafeBytes { opener.feed(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
            } else if count == 0 {
                throw ClusterError(.linkLost, "the peer closed the link before \(step)")
            } else if errno == EAGAIN {
                guard wait(descriptor, events: Int16(POLLIN), until: deadline) else {
                    throw ClusterError(.linkLost, "no \(step) in time")
                }
            } else {
                throw ClusterError(.linkLost, "reading \(step): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Waits until `descriptor` is ready for `events` or the deadline passes.
    static func wait(_ descriptor: Int32, events: Int16, until deadline: UInt64) -> Bool {
        while true {
            let now = monotonicNanoseconds()
            guard now < deadline else { return false }
            var entry = pollfd(fd: descriptor, events: events, revents: 0)
            let milliseconds = Int32(min((deadline - now + 999_999) / 1_000_000, 60_000))
            let ready = poll(&entry, 1, milliseconds)
            if ready > 0 { return true }
            if ready < 0 && errno != EINTR { return false }
        }
    }
}
