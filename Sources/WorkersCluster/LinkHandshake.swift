#if canImport(Glibc)
import Glibc
#endif
import Crypto
import WorkersCore
import WorkersWire

/// The link protocol's constants.
enum LinkProtocol {
    /// This build's link protocol; the driver refuses any other, with both versions in the error.
    static let version: UInt16 = 1
    static let magic = "SWKR"
    static let driverLabel = Array("swift-workers/2 driver".utf8)
    static let agentLabel = Array("swift-workers/2 agent".utf8)
    static let toAgentInfo = Array("swift-workers/2 session driver to agent".utf8)
    static let toDriverInfo = Array("swift-workers/2 session agent to driver".utf8)
    static let nonceSize = 32
}

/// Agent → driver, the first frame.
struct ConnectMessage: Codable, Hashable, Sendable {
    var magic = LinkProtocol.magic
    var protocolVersion = LinkProtocol.version
    var nonce: [UInt8]
    var host: String
    var processID: Int32
    var slots: Int
    /// SHA-256 of the agent's executable, hex; empty when the agent does not say.
    var build: String
    /// SHA-256 of the agent's job signatures, hex.
    var jobSet: String
    /// How the agent was started, for reports: `slurm job 41 step 0 task 1`, `ssh host`, `external`.
    var launch: String
}

struct ChallengeMessage: Codable, Hashable, Sendable {
    var nonce: [UInt8]
    var mac: [UInt8]
}

struct ProofMessage: Codable, Hashable, Sendable {
    var mac: [UInt8]
}

struct AcceptMessage: Codable, Hashable, Sendable {
    var heartbeatMilliseconds: Int
    var lostAfterMilliseconds: Int
}

struct RejectMessage: Codable, Hashable, Sendable {
    var code: String
    var detail: String

    init(_ error: ClusterError) {
        code = "\(error.code)"
        detail = error.detail
    }

    var error: ClusterError {
        let known: [String: ClusterError.Code] = [
            "versionMismatch": .versionMismatch, "jobSetMismatch": .jobSetMismatch, "buildMismatch": .buildMismatch,
            "authenticationFailed": .authenticationFailed, "protocolViolation": .protocolViolation,
        ]
        return ClusterError(known[code] ?? .protocolViolation, "the driver refused this agent: \(detail)")
    }
}

/// Agent → driver: a slot's worker ended.
struct ChannelClosed: Codable, Hashable, Sendable {
    /// The signal that ended it, or -1.
    var signal: Int32 = -1
    /// Its exit status, or -1.
    var exitCode: Int32 = -1
    /// Non-zero: the worker could not be started (an errno).
    var spawnErrno: Int32 = 0
    /// The slot closed because the agent is draining.
    var retired = false
}

/// Agent → driver, every heartbeat: each running worker's resident memory.
struct AgentHeartbeat: Codable, Hashable, Sendable {
    var channels: [UInt32] = []
    var residentBytes: [Int] = []
}

/// A link after its handshake: the two halves of its framing, keyed for the session.
struct AuthenticatedLink: Sendable {
    var sealer: LinkSealer
    var opener: LinkOpener
}

/// Mutual challenge–response over a fresh link (the agent dials, so it speaks first):
///
/// 1. connect, agent → driver: versions, nonce `Na`, host, slots, build and job-set digests;
/// 2. challenge, driver → agent: nonce `Nd` and `HMAC(K, "…driver" ‖ connect ‖ Nd)`;
/// 3. proof, agent → driver: `HMAC(K, "…agent" ‖ connect ‖ Nd ‖ challenge)`;
/// 4. both derive one session key per direction, `HKDF-SHA256(K, salt: Na ‖ Nd, info: direction)`,
///    and every later frame carries a MAC under it with a sequence number.
///
/// The role labels stop a reflected proof; the fresh nonces stop a replayed one; the transcript
/// binds the versions and digests, so they cannot be altered on the way. The link is not
/// encrypted: inputs and outputs can be read by anyone who can see the traffic.
enum LinkAuthentication {
    /// The driver's side. Returns the agent's connect message and the keyed link; refuses an
    /// agent of another protocol, job set or build with both values in the error.
    static func acceptAgent(
        input: Int32, output: Int32, key: PoolKey, jobSet: String, build: String?,
        accept: AcceptMessage, deadline: UInt64, maxFrameSize: Int
    ) throws(ClusterError) -> (ConnectMessage, AuthenticatedLink) {
        var link = AuthenticatedLink(sealer: LinkSealer(maxFrameSize: maxFrameSize), opener: LinkOpener(maxFrameSize: maxFrameSize))
        let first = try LinkIO.readFrame(input, opener: &link.opener, until: deadline, during: "the agent's connect")
        guard first.kind == .connect else {
            throw ClusterError(.protocolViolation, "expected a connect frame, got \(first.kind)")
        }
        let connect = try first.decode(ConnectMessage.self)
        guard connect.magic == LinkProtocol.magic else {
            throw ClusterError(.protocolViolation, "not a swift-workers agent (magic \(connect.magic))")
        }
        guard connect.protocolVersion == LinkProtocol.version else {
            let error = ClusterError(.versionMismatch, "link protocol: driver \(LinkProtocol.version), agent \(connect.protocolVersion) (host \(connect.host))")
            try? LinkIO.send(.reject, message: RejectMessage(error), on: output, sealer: &link.sealer, until: deadline)
            throw error
        }
        guard connect.nonce.count == LinkProtocol.nonceSize else {
            throw ClusterError(.protocolViolation, "a connect nonce of \(connect.nonce.count) bytes")
        }
        let connectBytes = LinkIO.wireBytes(first)
        let driverNonce = randomBytes(LinkProtocol.nonceSize)
        let driverMAC = mac(key, LinkProtocol.driverLabel, connectBytes, driverNonce)
        let challenge = try LinkIO.frame(.challenge, message: ChallengeMessage(nonce: driverNonce, mac: driverMAC))
        try LinkIO.send(challenge, on: output, sealer: &link.sealer, until: deadline)
        let proofFrame = try LinkIO.readFrame(input, opener: &link.opener, until: deadline, during: "the agent's proof")
        guard proofFrame.kind == .proof else {
            throw ClusterError(.protocolViolation, "expected a proof frame, got \(proofFrame.kind)")
        }
        let proof = try proofFrame.decode(ProofMessage.self)
        let expected = mac(key, LinkProtocol.agentLabel, connectBytes, driverNonce, LinkIO.wireBytes(challenge))
        guard proof.mac.count == expected.count, constantTimeEqual(proof.mac, expected) else {
            let error = ClusterError(.authenticationFailed, "the agent on \(connect.host) (pid \(connect.processID)) did not prove it holds the pool key: a wrong key, or a replayed proof")
            try? LinkIO.send(.reject, message: RejectMessage(error), on: output, sealer: &link.sealer, until: deadline)
            throw error
        }
        let keys = sessionKeys(key, agentNonce: connect.nonce, driverNonce: driverNonce)
        link.sealer.authenticate(with: keys.toAgent)
        link.opener.authenticate(with: keys.toDriver)
        if connect.jobSet != jobSet {
            let error = ClusterError(.jobSetMismatch, "job set: driver \(jobSet), agent \(connect.jobSet) (host \(connect.host)): the agent's program knows other jobs, or other input and output types")
            try? LinkIO.send(.reject, message: RejectMessage(error), on: output, sealer: &link.sealer, until: deadline)
            throw error
        }
        if let build, connect.build != build {
            let error = ClusterError(.buildMismatch, "build: driver \(build), agent \(connect.build.isEmpty ? "(none)" : connect.build) (host \(connect.host)): the agent runs another build of the program")
            try? LinkIO.send(.reject, message: RejectMessage(error), on: output, sealer: &link.sealer, until: deadline)
            throw error
        }
        try LinkIO.send(.accept, message: accept, on: output, sealer: &link.sealer, until: deadline)
        return (connect, link)
    }

    /// The agent's side: connect, check the driver's proof, prove the key, and wait for accept.
    static func connectToDriver(
        input: Int32, output: Int32, key: PoolKey, connect: ConnectMessage, deadline: UInt64, maxFrameSize: Int
    ) throws(ClusterError) -> (AcceptMessage, AuthenticatedLink) {
        var link = AuthenticatedLink(sealer: LinkSealer(maxFrameSize: maxFrameSize), opener: LinkOpener(maxFrameSize: maxFrameSize))
        let connectFrame = try LinkIO.frame(.connect, message: connect)
        try LinkIO.send(connectFrame, on: output, sealer: &link.sealer, until: deadline)
        let reply = try LinkIO.readFrame(input, opener: &link.opener, until: deadline, during: "the driver's challenge")
        if reply.kind == .reject { throw try reply.decode(RejectMessage.self).error }
        guard reply.kind == .challenge else {
            throw ClusterError(.protocolViolation, "expected a challenge frame, got \(reply.kind)")
        }
        let challenge = try reply.decode(ChallengeMessage.self)
        let connectBytes = LinkIO.wireBytes(connectFrame)
        let expected = mac(key, LinkProtocol.driverLabel, connectBytes, challenge.nonce)
        guard challenge.nonce.count == LinkProtocol.nonceSize, challenge.mac.count == expected.count, constantTimeEqual(challenge.mac, expected) else {
            throw ClusterError(.authenticationFailed, "the driver did not prove it holds the pool key: a wrong key, or not this pool's driver")
        }
        let proof = mac(key, LinkProtocol.agentLabel, connectBytes, challenge.nonce, LinkIO.wireBytes(reply))
        try LinkIO.send(.proof, message: ProofMessage(mac: proof), on: output, sealer: &link.sealer, until: deadline)
        let keys = sessionKeys(key, agentNonce: connect.nonce, driverNonce: challenge.nonce)
        link.sealer.authenticate(with: keys.toDriver)
        link.opener.authenticate(with: keys.toAgent)
        // An agent that got this far has checked the driver's proof, so the driver can only
        // refuse it sealed, under keys both derive: a MAC that fails here is an attack.
        let answer = try LinkIO.readFrame(input, opener: &link.opener, until: deadline, during: "the driver's accept")
        switch answer.kind {
        case .accept: return (try answer.decode(AcceptMessage.self), link)
        case .reject: throw try answer.decode(RejectMessage.self).error
        default: throw ClusterError(.protocolViolation, "expected accept, got \(answer.kind)")
        }
    }

    static func mac(_ key: PoolKey, _ parts: [UInt8]...) -> [UInt8] {
        var hmac = HMAC<SHA256>(key: key.key)
        for part in parts { hmac.update(data: part) }
        return Array(hmac.finalize())
    }

    static func sessionKeys(_ key: PoolKey, agentNonce: [UInt8], driverNonce: [UInt8]) -> (toAgent: SymmetricKey, toDriver: SymmetricKey) {
        let salt = agentNonce + driverNonce
        let toAgent = HKDF<SHA256>.deriveKey(inputKeyMaterial: key.key, salt: salt, info: LinkProtocol.toAgentInfo, outputByteCount: 32)
        let toDriver = HKDF<SHA256>.deriveKey(inputKeyMaterial: key.key, salt: salt, info: LinkProtocol.toDriverInfo, outputByteCount: 32)
        return (toAgent, toDriver)
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }

    static func randomBytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }
}
