#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import Testing
@testable import WorkersCluster
import WorkersCore
import WorkersProcesses
import WorkersTestJobs
import WorkersWire

/// A driver's hub on loopback, and raw connections to it that play agents — honest, wrong,
/// replayed and hostile ones.
final class HubFixture: @unchecked Sendable {  // @unchecked: the hub is thread-safe; the rest is set once.
    let key = PoolKey.generate()
    let hub: ClusterHub
    let port: UInt16
    static let jobSet = NodeAgent.jobSetDigest(TestJobs.all.map { $0.wireSignature }.sorted())

    init(build: String? = "b1") throws {
        hub = ClusterHub(configuration: ClusterHub.Configuration(
            key: key, jobSet: Self.jobSet, build: build, heartbeat: testHeartbeat,
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        ))
        port = try hub.listen(host: "127.0.0.1", port: 0)
    }

    deinit { hub.shutdown(grace: .milliseconds(100)) }

    func dial() throws -> Int32 {
        try Agent.dial(host: "127.0.0.1", port: port, until: monotonicNanoseconds() + 2_000_000_000)
    }

    func connect(version: UInt16 = LinkProtocol.version, jobSet: String = HubFixture.jobSet, build: String = "b1") -> ConnectMessage {
        var message = ConnectMessage(nonce: LinkAuthentication.randomBytes(32), host: "fake", processID: 1, slots: 1, build: build, jobSet: jobSet, launch: "test")
        message.protocolVersion = version
        return message
    }

    /// Runs an agent's handshake with `key` on a new connection.
    func handshake(key: PoolKey? = nil, connect message: ConnectMessage? = nil) throws -> (Int32, AuthenticatedLink) {
        let descriptor = try dial()
        do {
            let (_, link) = try LinkAuthentication.connectToDriver(
                input: descriptor, output: descriptor, key: key ?? self.key, connect: message ?? connect(),
                deadline: monotonicNanoseconds() + 2_000_000_000, maxFrameSize: 1 << 20
            )
            return (descriptor, link)
        } catch {
            close(descriptor)  // as an agent that gives up exits
            throw error
        }
    }

    /// Waits until the hub has refused `count` agents; returns them. Each refusal must come
    /// within 1 s of the hub's accepting the connection (the part the driver controls; the
    /// test's own wait also counts the time a loaded machine takes to schedule the hub).
    func refusals(_ count: Int, within timeout: Duration = .seconds(5)) async -> [ClusterError] {
        let hub = self.hub
        let deadline = ContinuousClock.now.advanced(by: timeout)
        _ = await onThread { hub.waitForRefusals(count, until: deadline) }  // signalled by the hub as it refuses
        for delay in hub.refusalDelays { #expect(delay < .seconds(1 * stressScale), "refused \(delay) after the connection was accepted") }
        return hub.refused
    }
}

@Suite("The link's authentication and integrity")
struct LinkSecurityTests {
    @Test("the right key joins; the agent is listed")
    func rightKey() async throws {
        let fixture = try HubFixture()
        let (descriptor, _) = try fixture.handshake()
        defer { close(descriptor) }
        #expect(fixture.hub.waitForAgents(1, until: .now.advanced(by: .seconds(2))) == 1)
    }

    @Test("a wrong key: the agent refuses the driver's proof at once, and nothing joins")
    func wrongKey() async throws {
        let fixture = try HubFixture()
        let start = ContinuousClock.now
        #expect {
            _ = try fixture.handshake(key: PoolKey.generate())
        } throws: { ($0 as? ClusterError)?.code == .authenticationFailed }
        if stressScale == 1 { #expect(start.duration(to: .now) < .seconds(3), "end to end, on a loaded machine") }
        let refused = await fixture.refusals(1)
        #expect(refused.count == 1)
        #expect(fixture.hub.agents.isEmpty)
    }

    @Test("a replayed proof is refused: the driver's nonce is new on every connection")
    func replayedProof() async throws {
        let fixture = try HubFixture()
        // Record an honest agent's connect and proof.
        let message = fixture.connect()
        let connectFrame = try LinkIO.frame(.connect, message: message)
        let first = try fixture.dial()
        defer { close(first) }
        var sealer = LinkSealer(maxFrameSize: 4096)
        var opener = LinkOpener(maxFrameSize: 4096)
        try LinkIO.send(connectFrame, on: first, sealer: &sealer, until: monotonicNanoseconds() + 1_000_000_000)
        let challengeFrame = try LinkIO.readFrame(first, opener: &opener, until: monotonicNanoseconds() + 1_000_000_000, during: "challenge")
        let challenge = try challengeFrame.decode(ChallengeMessage.self)
        let proof = LinkAuthentication.mac(fixture.key, LinkProtocol.agentLabel, LinkIO.wireBytes(connectFrame), challenge.nonce, LinkIO.wireBytes(challengeFrame))
        let proofFrame = try LinkIO.frame(.proof, message: ProofMessage(mac: proof))
        try LinkIO.send(proofFrame, on: first, sealer: &sealer, until: monotonicNanoseconds() + 1_000_000_000)
        #expect(fixture.hub.waitForAgents(1, until: .now.advanced(by: .seconds(2))) == 1)
        // Replay both on a new connection, as a sniffer would, without the key.
        let second = try fixture.dial()
        defer { close(second) }
        let start = ContinuousClock.now
        try LinkIO.writeAll(LinkIO.wireBytes(connectFrame) + LinkIO.wireBytes(proofFrame), to: second, until: monotonicNanoseconds() + 1_000_000_000)
        let refused = await fixture.refusals(1)
        #expect(refused.first?.code == .authenticationFailed)
        #expect(refused.first?.detail.contains("replayed") == true)
        if stressScale == 1 { #expect(start.duration(to: .now) < .seconds(3), "end to end, on a loaded machine") }
        #expect(fixture.hub.agents.count == 1)
    }

    @Test("one flipped byte after authentication fails its MAC and ends the link")
    func flippedByte() async throws {
        let fixture = try HubFixture()
        var (descriptor, link) = try fixture.handshake()
        defer { close(descriptor) }
        #expect(fixture.hub.waitForAgents(1, until: .now.advanced(by: .seconds(2))) == 1)
        var bytes: [UInt8] = []
        link.sealer.seal(.heartbeat, channel: 0, payload: UnsafeRawBufferPointer(start: nil, count: 0), into: &bytes)
        bytes[bytes.count - 3] ^= 0x01
        let start = ContinuousClock.now
        try LinkIO.writeAll(bytes, to: descriptor, until: monotonicNanoseconds() + 1_000_000_000)
        // The driver closes the link: the agent's next read sees the end.
        var buffer = [UInt8](repeating: 0, count: 4096)
        var ended = false
        while LinkIO.wait(descriptor, events: Int16(POLLIN), until: monotonicNanoseconds() + 1_000_000_000) {
            let count = read(descriptor, &buffer, buffer.count)
            if count == 0 || (count < 0 && errno != EAGAIN) {
                ended = true
                break
            }
        }
        #expect(ended)
        if stressScale == 1 { #expect(start.duration(to: .now) < .seconds(3), "end to end, on a loaded machine") }
        #expect(await eventually(within: .seconds(1)) { fixture.hub.agents.allSatisfy { !$0.isConnected } })
    }

    @Test("an HTTP request to the port is refused on its first bytes")
    func httpRequest() async throws {
        let fixture = try HubFixture()
        let descriptor = try fixture.dial()
        defer { close(descriptor) }
        let start = ContinuousClock.now
        try LinkIO.writeAll(Array("GET / HTTP/1.1\r\nHost: driver\r\n\r\n".utf8), to: descriptor, until: monotonicNanoseconds() + 1_000_000_000)
        let refused = await fixture.refusals(1)
        #expect(refused.first?.code == .protocolViolation)
        #expect(refused.first?.detail.contains("GET ") == true)
        if stressScale == 1 { #expect(start.duration(to: .now) < .seconds(3), "end to end, on a loaded machine") }
    }

    @Test("another protocol, job set or build is refused with both sides' values", arguments: ["version", "jobs", "build"])
    func mismatch(_ what: String) async throws {
        let fixture = try HubFixture()
        let message: ConnectMessage
        let code: ClusterError.Code
        let values: [String]
        switch what {
        case "version":
            message = fixture.connect(version: 99)
            code = .versionMismatch
            values = ["driver \(LinkProtocol.version)", "agent 99"]
        case "jobs":
            message = fixture.connect(jobSet: "feed")
            code = .jobSetMismatch
            values = [HubFixture.jobSet, "feed"]
        default:
            message = fixture.connect(build: "b2")
            code = .buildMismatch
            values = ["driver b1", "agent b2"]
        }
        #expect {
            _ = try fixture.handshake(connect: message)
        } throws: { error in
            guard let error = error as? ClusterError else { return false }
            return error.code == code && values.allSatisfy { error.detail.contains($0) }
        }
        let refused = await fixture.refusals(1)
        #expect(refused.first?.code == code)
    }
}

@Suite("Pool keys", .serialized)  // two tests set and clear the key variables
struct PoolKeyTests {
    func directory() -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("workers-key-test-\(UUID().uuidString)").path
        mkdir(path, 0o700)
        return path
    }

    @Test("a written key reads back; the file is 0600 in a 0700 directory")
    func roundTrip() throws {
        let key = PoolKey.generate()
        let path = try key.writeToNewDirectory(under: directory())
        var status = stat()
        stat(path, &status)
        #expect(status.st_mode & 0o777 == 0o600)
        #expect(try PoolKey.load(file: path).hex == key.hex)
        PoolKey.remove(file: path)
        #expect(access(path, F_OK) != 0)
    }

    @Test("a key file others can read is refused, naming its mode")
    func groupReadable() throws {
        let path = try PoolKey.generate().writeToNewDirectory(under: directory())
        chmod(path, 0o644)
        #expect {
            _ = try PoolKey.load(file: path)
        } throws: { error in
            guard let error = error as? ClusterError else { return false }
            return error.code == .keyFile && error.detail.contains("mode 644")
        }
    }

    @Test("a key in a directory others can enter is refused")
    func openDirectory() throws {
        let path = try PoolKey.generate().writeToNewDirectory(under: directory())
        chmod(String(path[..<path.lastIndex(of: "/")!]), 0o755)
        #expect { _ = try PoolKey.load(file: path) } throws: { ($0 as? ClusterError)?.code == .keyFile }
    }

    @Test("no key at all is a clear error naming the variables")
    func missingKey() throws {
        unsetenv(PoolKey.fileVariable)
        unsetenv(PoolKey.environmentVariable)
        #expect {
            _ = try PoolKey.fromAgentEnvironment()
        } throws: { error in
            guard let error = error as? ClusterError else { return false }
            return error.code == .keyFile && error.detail.contains(PoolKey.fileVariable)
        }
    }

    @Test("the key from the environment is taken, then removed from it")
    func environmentKey() throws {
        let key = PoolKey.generate()
        unsetenv(PoolKey.fileVariable)
        setenv(PoolKey.environmentVariable, key.hex, 1)
        #expect(try PoolKey.fromAgentEnvironment().hex == key.hex)
        #expect(getenv(PoolKey.environmentVariable) == nil)
    }
}

@Suite("Link frames")
struct LinkFrameTests {
    @Test("sealed frames open in order; a reordered or repeated one fails")
    func sequence() throws {
        let key = PoolKey.generate().key
        var sealer = LinkSealer(maxFrameSize: 1 << 20)
        var opener = LinkOpener(maxFrameSize: 1 << 20)
        sealer.authenticate(with: key)
        opener.authenticate(with: key)
        var first: [UInt8] = []
        var second: [UInt8] = []
        sealer.seal(LinkFrame(.data, channel: 3, payload: [1, 2, 3]), into: &first)
        sealer.seal(LinkFrame(.data, channel: 3, payload: [4]), into: &second)
        first.withUnsafeBytes { opener.feed($0) }
        #expect(try opener.next() == LinkFrame(.data, channel: 3, payload: [1, 2, 3]))
        var replay = opener
        first.withUnsafeBytes { replay.feed($0) }
        #expect { _ = try replay.next() } throws: { ($0 as? ClusterError)?.code == .protocolViolation }
        second.withUnsafeBytes { opener.feed($0) }
        #expect(try opener.next() == LinkFrame(.data, channel: 3, payload: [4]))
    }

    @Test("a frame scanner counts batches and answers across any split")
    func scanner() throws {
        var stream: [UInt8] = []
        for kind: Frame.Kind in [.submit, .heartbeat, .result, .submit, .failure] {
            stream += [0, 0, 0, 12, kind.rawValue] + [UInt8](repeating: 7, count: 11)
        }
        for split in 1..<stream.count {
            var scanner = FrameScanner()
            scanner.feed(Array(stream[..<split]))
            scanner.feed(Array(stream[split...]))
            #expect(scanner.submits == 2 && scanner.answers == 2)
        }
    }

    /// A draining agent passes everything but new batches: whole frames left out, the rest
    /// byte for byte, however the stream is split; a batch begun before the drain goes through.
    @Test("a draining agent's scanner leaves out whole batches across any split")
    func scannerDropsSubmitsWhileDraining() throws {
        func frame(_ kind: Frame.Kind, _ fill: UInt8) -> [UInt8] { [0, 0, 0, 12, kind.rawValue] + [UInt8](repeating: fill, count: 11) }
        let stream = frame(.submit, 1) + frame(.heartbeat, 2) + frame(.submit, 3) + frame(.goodbye, 4)
        for split in 1..<stream.count {
            var scanner = FrameScanner()
            let kept = scanner.forward(Array(stream[..<split]), droppingSubmits: true) + scanner.forward(Array(stream[split...]), droppingSubmits: true)
            #expect(kept == frame(.heartbeat, 2) + frame(.goodbye, 4), "split at \(split)")
            #expect(scanner.submits == 0 && scanner.dropped == 2)
        }
        // The drain begins inside the first batch: that batch goes through whole, the next is left out.
        for split in 1..<16 {
            var scanner = FrameScanner()
            let kept = scanner.forward(Array(stream[..<split]), droppingSubmits: split < 5 ? true : false)
                + scanner.forward(Array(stream[split...]), droppingSubmits: true)
            let expected = split < 5 ? frame(.heartbeat, 2) + frame(.goodbye, 4) : frame(.submit, 1) + frame(.heartbeat, 2) + frame(.goodbye, 4)
            #expect(kept == expected, "split at \(split)")
        }
    }
}

