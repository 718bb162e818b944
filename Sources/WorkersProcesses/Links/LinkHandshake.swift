#if canImport(Glibc)
import Glibc
#endif
import CWorkersShims
import WorkersCore
import WorkersWire

/// The driver's side of the handshake, over any ``WorkerLink``: hello out, welcome (or reject)
/// back, within a time-out. Transport-neutral: it only reads and writes the link's descriptors.
enum LinkHandshake {
    /// Makes the link's descriptors non-blocking, sends `hello` and checks the worker's welcome.
    /// Bytes after the welcome stay in `decoder`.
    ///
    /// - Throws: ``ProcessPoolError``, after releasing the link: `.protocolViolation` with both
    ///   sides' values for a refusal or a mismatch, `.workerCrashed` for a worker that ended.
    static func run(_ link: any WorkerLink, hello: Hello, decoder: inout FrameDecoder, timeout: Duration) throws(ProcessPoolError) {
        let deadline = monotonicNanoseconds() + UInt64(timeout.saturatingNanoseconds)
        _ = cworkers_set_nonblocking(link.inputDescriptor)
        _ = cworkers_set_nonblocking(link.outputDescriptor)
        guard let bytes = try? Frame(kind: .hello, message: hello).encoded(maxFrameSize: hello.maxFrameSize),
              write(bytes, to: link.outputDescriptor, until: deadline) else {
            throw ProcessPoolError(link.terminate())
        }
        let frame: Frame
        switch read(link.inputDescriptor, into: &decoder, until: deadline) {
        case .frame(let received):
            frame = received
        case .endOfStream:
            throw ProcessPoolError(link.reap())
        case .timedOut:
            link.terminate()
            throw ProcessPoolError(.protocolViolation("no welcome within \(timeout)"))
        case .violation(let error):
            link.terminate()
            throw ProcessPoolError(.protocolViolation("handshake: \(error)"))
        }
        switch frame.kind {
        case .welcome:
            guard let welcome = try? frame.decode(Welcome.self) else {
                link.terminate()
                throw ProcessPoolError(.protocolViolation("handshake: a welcome that does not decode"))
            }
            if case .failure(let error) = Handshake.check(welcome, needs: hello.jobNames, hello: hello) {
                link.terminate()
                throw ProcessPoolError(.protocolViolation("handshake: \(error)"))
            }
        case .reject:
            link.terminate()
            throw ProcessPoolError(.protocolViolation("worker refused: \(String(decoding: frame.payload, as: UTF8.self))"))
        default:
            link.terminate()
            throw ProcessPoolError(.protocolViolation("handshake: unexpected \(frame.kind) frame"))
        }
    }

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
            let count = buffer.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if count > 0 {
                decoder.feed(buffer[0..<count])
                continue
            }
            if count == 0 { return .endOfStream }
            if errno == EINTR { continue }
            guard errno == EAGAIN else { return .endOfStream }
            let now = monotonicNanoseconds()
            guard now < deadline else { return .timedOut }
            var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            _ = poll(&entry, 1, Int32(min((deadline - now + 999_999) / 1_000_000, 10_000)))
        }
    }

    /// Writes all of `bytes` to non-blocking `descriptor`, waiting for room until `deadline`.
    static func write(_ bytes: [UInt8], to descriptor: Int32, until deadline: UInt64) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let count = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress! + offset, $0.count - offset) }
            if count >= 0 {
                offset += count
                continue
            }
            if errno == EINTR { continue }
            guard errno == EAGAIN else { return false }
            let now = monotonicNanoseconds()
            guard now < deadline else { return false }
            var entry = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
            _ = poll(&entry, 1, Int32(min((deadline - now + 999_999) / 1_000_000, 10_000)))
        }
        return true
    }
}
