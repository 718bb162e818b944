#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import WorkersCore
import WorkersWire
@testable import WorkersProcesses

/// Workers that are threads of the test process at the far end of a socketpair: the proof that
/// the supervisor only needs a ``WorkerLink``. Each speaks the real protocol (handshake, Submit,
/// heartbeats) and does with each input what ``Script`` says, so a test can make a worker answer,
/// crash, fall silent or send garbage at the moment it wants.
final class SocketPairLauncher: WorkerLauncher, @unchecked Sendable {  // @unchecked: counters are guarded by `lock`.
    /// What the far end does with an input (an `Int`).
    enum Step: Sendable {
        /// Answers with this value.
        case answer(Int)
        /// Closes its end, as a crashed process would.
        case crash
        /// Stops sending anything, heartbeats included, as a stopped process would.
        case fallSilent
        /// Sends bytes that are no frame.
        case garbage
        /// Sends a well-formed frame of a kind no version knows.
        case unknownKind
        /// Sends a frame the driver never accepts from a worker (a Submit).
        case submitFrame
        /// Waits for the event, then answers with the value.
        case answerAfter(Event, Int)
        /// Answers its batch with a result frame that holds one output too many.
        case wrongCount
    }

    typealias Script = @Sendable (Int) -> Step

    let script: Script
    /// The protocol version the far end claims in its welcome.
    let welcomeVersion: UInt16
    private let lock = PthreadLock()
    private var launchedCount = 0

    init(welcomeVersion: UInt16 = WireProtocol.version, script: @escaping Script) {
        self.script = script
        self.welcomeVersion = welcomeVersion
    }

    /// How many far ends were started.
    var launched: Int { lock.withLock { launchedCount } }

    func launch(slot: Int) throws(ProcessPoolError) -> any WorkerLink {
        var pair: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            throw ProcessPoolError(.spawnFailed(errno: errno))
        }
        lock.withLock { launchedCount += 1 }
        let far = pair[1]
        let script = self.script
        let version = welcomeVersion
        Thread.detachNewThread { FarEnd(descriptor: far, script: script, welcomeVersion: version).run() }
        return SocketLink(descriptor: pair[0])
    }
}

/// The driver's end of a socketpair.
final class SocketLink: WorkerLink, @unchecked Sendable {  // @unchecked: released once, by the slot's thread.
    let descriptor: Int32
    init(descriptor: Int32) { self.descriptor = descriptor }
    var inputDescriptor: Int32 { descriptor }
    var outputDescriptor: Int32 { descriptor }
    var processID: Int32? { nil }
    func residentBytes() -> Int? { nil }

    func reap() -> ProcessPoolError.Code {
        close(descriptor)
        return .workerCrashed(signal: nil, exitCode: 0)
    }

    @discardableResult
    func terminate() -> ProcessPoolError.Code {
        shutdown(descriptor, Int32(SHUT_RDWR))
        close(descriptor)
        return .workerCrashed(signal: SIGKILL, exitCode: nil)
    }

    func stop(grace: Duration) {
        let goodbye = Frame(kind: .goodbye).encodedHeaderOnly
        _ = goodbye.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        _ = waitForEndOfStream(descriptor, seconds: 2)
        close(descriptor)
    }
}

/// The far end: a worker loop on a thread.
private struct FarEnd {
    let descriptor: Int32
    let script: SocketPairLauncher.Script
    let welcomeVersion: UInt16

    func run() {
        defer { close(descriptor) }
        var reader = FrameReader(readFD: descriptor, maxFrameSize: WireProtocol.defaultMaxFrameSize)
        let writer = FrameWriter(descriptor: descriptor)
        guard case .frame(let first) = reader.read(), let hello = try? first.decode(Hello.self),
              case .success(var welcome) = Handshake.answer(hello, jobNames: hello.jobNames, processID: 0) else { return }
        welcome.protocolVersion = welcomeVersion
        guard let frame = try? Frame(kind: .welcome, message: welcome), writer.write(frame) else { return }
        let silent = Event()
        let closed = Event()
        defer { closed.set() }
        if hello.heartbeatMilliseconds > 0 {
            let interval = Duration.milliseconds(hello.heartbeatMilliseconds)
            Thread.detachNewThread {
                // Beats until the far end closes or falls silent; closed.wait is the interval's timer.
                while !closed.wait(timeout: interval), !silent.isSet {
                    guard writer.write(Frame(kind: .heartbeat)) else { return }
                }
            }
        }
        while case .frame(let frame) = reader.read() {
            switch frame.kind {
            case .heartbeat: continue
            case .goodbye: return
            case .submit:
                guard let submit = try? frame.decode(Submit.self), let inputs = try? WireDecoder().decode([Int].self, from: submit.inputs) else { return }
                var outputs: [Int] = []
                for input in inputs {
                    switch script(input) {
                    case .wrongCount:
                        outputs += [input, input]
                    case .answer(let value):
                        outputs.append(value)
                    case .answerAfter(let event, let value):
                        _ = event.wait(timeout: nil)
                        outputs.append(value)
                    case .crash:
                        return
                    case .fallSilent:
                        silent.set()
                        _ = closed.wait(timeout: .seconds(60))  // until the driver gives up on us
                        return
                    case .garbage, .unknownKind, .submitFrame:
                        var junk = [UInt8](repeating: 0xFF, count: 64)
                        if case .unknownKind = script(input) { junk = [0, 0, 0, 9, 200, 0, 0, 0, 0, 0, 0, 0, 1] }
                        if case .submitFrame = script(input) { junk = Frame(kind: .submit, requestID: frame.requestID).encodedHeaderOnly }
                        _ = junk.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
                        _ = reader.read()  // until the driver closes the link
                        return
                    }
                }
                guard let encoded = try? WireEncoder().encode(outputs),
                      let reply = try? Frame(kind: .result, requestID: frame.requestID, message: Outputs(count: outputs.count, outputs: encoded)),
                      writer.write(reply) else { return }
            default:
                return
            }
        }
    }
}

/// A supervisor over socketpair workers, and the calls a pool would make.
struct SocketPairPool {
    let supervisor: Supervisor
    let launcher: SocketPairLauncher

    init(workers: Int = 2, heartbeat: Heartbeat = .standard, retry: RetryPolicy = .none, prefetch: Int = 0, welcomeVersion: UInt16 = WireProtocol.version, script: @escaping SocketPairLauncher.Script) async throws {
        launcher = SocketPairLauncher(welcomeVersion: welcomeVersion, script: script)
        supervisor = Supervisor(
            workers: workers,
            configuration: Supervisor.Configuration(jobNames: ["script"], heartbeat: heartbeat, memoryLimit: nil, spinNanoseconds: 0),
            launcher: launcher, retry: retry, maxJobsPerWorker: nil, prefetch: prefetch,
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }), metrics: nil
        )
        try await supervisor.start()
    }

    func run(_ input: Int, timeout: Duration? = nil) async throws -> Int {
        let request = try BatchRequest(jobName: "script", inputs: WireEncoder().encode([input]), count: 1, firstIndex: nil, timeout: timeout)
        let answer = try await supervisor.submit(request)
        return try WireDecoder().decode([Int].self, from: answer.outputs)[0]
    }

    func shutdown(_ mode: ProcessPool.ShutdownMode = .drain) async { await supervisor.shutdown(mode) }
}
