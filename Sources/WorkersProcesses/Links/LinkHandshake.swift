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
              DescriptorIO.write(bytes, to: link.outputDescriptor, until: deadline) else {
            throw ProcessPoolError(link.terminate())
        }
        let frame: Frame
        switch DescriptorIO.read(link.inputDescriptor, into: &decoder, until: deadline) {
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
}
