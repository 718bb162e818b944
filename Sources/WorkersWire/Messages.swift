/// Driver → worker, first frame: who the worker is, what it will be asked to run, and how often
/// each side proves it is alive.
public struct Hello: Codable, Hashable, Sendable {
    /// The driver's ``WireProtocol/version``.
    public var protocolVersion: UInt16
    /// The id the driver gives this worker (jobs can read it).
    public var workerID: Int
    /// The wire names of the jobs the driver may submit.
    public var jobNames: [String]
    /// The largest frame either side may send.
    public var maxFrameSize: Int
    /// How often each side sends a ``Frame/Kind/heartbeat``, in milliseconds; 0: never.
    public var heartbeatMilliseconds: Int
    /// How long a silent peer is given before it counts as lost, in milliseconds; 0: forever.
    public var lostAfterMilliseconds: Int

    /// Creates a hello for this build's protocol version.
    public init(workerID: Int, jobNames: [String], maxFrameSize: Int = WireProtocol.defaultMaxFrameSize, heartbeatMilliseconds: Int = 0, lostAfterMilliseconds: Int = 0) {
        self.protocolVersion = WireProtocol.version
        self.workerID = workerID
        self.jobNames = jobNames
        self.maxFrameSize = maxFrameSize
        self.heartbeatMilliseconds = heartbeatMilliseconds
        self.lostAfterMilliseconds = lostAfterMilliseconds
    }

    private enum CodingKeys: String, CodingKey {
        case protocolVersion, workerID, jobNames, maxFrameSize, heartbeatMilliseconds, lostAfterMilliseconds
    }

    /// Decodes the version first and every later field leniently, so a hello from another
    /// version still decodes and the handshake can refuse it with both versions in the error.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        protocolVersion = try container.decode(UInt16.self, forKey: .protocolVersion)
        workerID = try container.decodeIfPresent(Int.self, forKey: .workerID) ?? -1
        jobNames = try container.decodeIfPresent([String].self, forKey: .jobNames) ?? []
        maxFrameSize = try container.decodeIfPresent(Int.self, forKey: .maxFrameSize) ?? WireProtocol.defaultMaxFrameSize
        heartbeatMilliseconds = try container.decodeIfPresent(Int.self, forKey: .heartbeatMilliseconds) ?? 0
        lostAfterMilliseconds = try container.decodeIfPresent(Int.self, forKey: .lostAfterMilliseconds) ?? 0
    }
}

/// Worker → driver: the handshake succeeded.
public struct Welcome: Codable, Hashable, Sendable {
    /// The worker's ``WireProtocol/version``.
    public var protocolVersion: UInt16
    /// The id the worker was given.
    public var workerID: Int
    /// The worker's process id (for signals and reports; meaningless across machines).
    public var processID: Int32
    /// Every job the worker can run.
    public var jobNames: [String]
    /// The heartbeat interval the worker agreed to, in milliseconds (the hello's).
    public var heartbeatMilliseconds: Int
    /// The silence after which the worker gives the driver up, in milliseconds (the hello's).
    public var lostAfterMilliseconds: Int

    /// Creates a welcome for this build's protocol version.
    public init(workerID: Int, processID: Int32, jobNames: [String], heartbeatMilliseconds: Int = 0, lostAfterMilliseconds: Int = 0) {
        self.protocolVersion = WireProtocol.version
        self.workerID = workerID
        self.processID = processID
        self.jobNames = jobNames
        self.heartbeatMilliseconds = heartbeatMilliseconds
        self.lostAfterMilliseconds = lostAfterMilliseconds
    }

    private enum CodingKeys: String, CodingKey {
        case protocolVersion, workerID, processID, jobNames, heartbeatMilliseconds, lostAfterMilliseconds
    }

    /// Decodes the version first and every later field leniently, as ``Hello`` does.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        protocolVersion = try container.decode(UInt16.self, forKey: .protocolVersion)
        workerID = try container.decodeIfPresent(Int.self, forKey: .workerID) ?? -1
        processID = try container.decodeIfPresent(Int32.self, forKey: .processID) ?? 0
        jobNames = try container.decodeIfPresent([String].self, forKey: .jobNames) ?? []
        heartbeatMilliseconds = try container.decodeIfPresent(Int.self, forKey: .heartbeatMilliseconds) ?? 0
        lostAfterMilliseconds = try container.decodeIfPresent(Int.self, forKey: .lostAfterMilliseconds) ?? 0
    }
}

/// Driver → worker: run job `jobName` on each of `count` inputs, in order, and answer with
/// ``Outputs``. The inputs travel as one encoded array, so a chunk costs one encoding, not one per
/// input.
public struct Submit: Codable, Hashable, Sendable {
    /// The job's wire name.
    public var jobName: String
    /// How many inputs `inputs` holds (1 when unchunked).
    public var count: Int
    /// The inputs, encoded together as an array with ``WireEncoder``.
    public var inputs: [UInt8]

    /// Creates a submission.
    public init(jobName: String, count: Int, inputs: [UInt8]) {
        self.jobName = jobName
        self.count = count
        self.inputs = inputs
    }
}

/// Worker → driver: the outputs of a ``Submit``, one per input, in order, encoded as one array.
public struct Outputs: Codable, Hashable, Sendable {
    /// How many outputs `outputs` holds.
    public var count: Int
    /// The outputs, encoded together as an array.
    public var outputs: [UInt8]

    /// Creates the outputs.
    public init(count: Int, outputs: [UInt8]) {
        self.count = count
        self.outputs = outputs
    }
}

/// Worker → driver: the job threw on the input at `index` of its batch; the outputs of the inputs
/// before it come with it.
public struct JobFailure: Codable, Hashable, Sendable {
    /// The index in the batch of the input that failed.
    public var index: Int
    /// The outputs of the inputs before `index`, encoded together as an array.
    public var completed: [UInt8]
    /// The thrown error's type, as `String(reflecting:)` names it.
    public var errorType: String
    /// The thrown error, as `String(describing:)` prints it.
    public var message: String

    /// Creates a failure report.
    public init(index: Int, completed: [UInt8], errorType: String, message: String) {
        self.index = index
        self.completed = completed
        self.errorType = errorType
        self.message = message
    }
}

extension Frame {
    /// A frame carrying `message` encoded with ``WireEncoder``.
    public init<Message: Encodable>(kind: Kind, requestID: UInt64 = 0, message: Message) throws {
        self.init(kind: kind, requestID: requestID, payload: try WireEncoder().encode(message))
    }

    /// The payload decoded as `type`.
    ///
    /// - Throws: ``WireError`` with `.malformedPayload` if it is not one.
    public func decode<Message: Decodable>(_ type: Message.Type) throws(WireError) -> Message {
        do {
            return try WireDecoder().decode(type, from: payload)
        } catch let error as WireError {
            throw error
        } catch {
            throw WireError(.malformedPayload, "\(kind) frame: \(error)")
        }
    }
}

/// The two checks of the handshake, as pure functions.
public enum Handshake {
    /// The worker's answer to a driver's hello: a welcome, or the reason to reject it.
    ///
    /// - Parameters:
    ///   - hello: what the driver sent.
    ///   - jobNames: the jobs this worker can run.
    ///   - processID: this worker's pid.
    public static func answer(_ hello: Hello, jobNames: [String], processID: Int32) -> Result<Welcome, WireError> {
        guard hello.protocolVersion == WireProtocol.version else {
            return .failure(WireError(.versionMismatch(local: WireProtocol.version, remote: hello.protocolVersion)))
        }
        let known = Set(jobNames)
        let missing = hello.jobNames.filter { !known.contains($0) }
        guard missing.isEmpty else { return .failure(WireError(.unknownJobs(missing))) }
        return .success(Welcome(
            workerID: hello.workerID, processID: processID, jobNames: jobNames,
            heartbeatMilliseconds: hello.heartbeatMilliseconds, lostAfterMilliseconds: hello.lostAfterMilliseconds
        ))
    }

    /// The driver's check of a worker's welcome against the jobs it needs and the heartbeats it
    /// proposed in `hello`.
    public static func check(_ welcome: Welcome, needs jobNames: [String], hello: Hello? = nil) -> Result<Welcome, WireError> {
        guard welcome.protocolVersion == WireProtocol.version else {
            return .failure(WireError(.versionMismatch(local: WireProtocol.version, remote: welcome.protocolVersion)))
        }
        if let hello, welcome.heartbeatMilliseconds != hello.heartbeatMilliseconds || welcome.lostAfterMilliseconds != hello.lostAfterMilliseconds {
            return .failure(WireError(
                .malformedPayload,
                "the worker agreed to heartbeats every \(welcome.heartbeatMilliseconds) ms, lost after \(welcome.lostAfterMilliseconds) ms; the driver asked for \(hello.heartbeatMilliseconds) and \(hello.lostAfterMilliseconds)"
            ))
        }
        let known = Set(welcome.jobNames)
        let missing = jobNames.filter { !known.contains($0) }
        guard missing.isEmpty else { return .failure(WireError(.unknownJobs(missing))) }
        return .success(welcome)
    }
}

// MARK: - Fast paths for the messages on the hot path

/// A message written straight to the wire form, without Codable's containers: `Submit`, `Outputs`
/// and `JobFailure` travel once per batch, and a round trip of an empty job is mostly their cost.
/// ``WireEncoder`` and ``WireDecoder`` take this path for them at the top level; the bytes are
/// the ones the Codable path writes.
protocol DirectWireMessage {
    var wireValue: WireValue { get }
    init(wireValue: WireValue) throws(WireError)
}

extension WireValue {
    /// The entries of a map, by key (messages have few keys: a linear search).
    fileprivate func field(_ key: String) throws(WireError) -> WireValue {
        guard case .map(let entries) = self, let value = entries.first(where: { $0.0 == key })?.1 else {
            throw WireError(.malformedPayload, "no field \(key)")
        }
        return value
    }

    fileprivate func string(_ key: String) throws(WireError) -> String {
        guard case .string(let value) = try field(key) else { throw WireError(.malformedPayload, "\(key) is not a string") }
        return value
    }

    fileprivate func int(_ key: String) throws(WireError) -> Int {
        switch try field(key) {
        case .int(let value): guard let int = Int(exactly: value) else { break }; return int
        case .uint(let value): guard let int = Int(exactly: value) else { break }; return int
        default: break
        }
        throw WireError(.malformedPayload, "\(key) is not an integer")
    }

    fileprivate func bytes(_ key: String) throws(WireError) -> [UInt8] {
        switch try field(key) {
        case .bytes(let value): return value
        case .array(let values):
            // A generic encoder wrote the bytes as an array of small integers.
            var bytes: [UInt8] = []
            for value in values {
                guard case .uint(let byte) = value, let narrow = UInt8(exactly: byte) else { throw WireError(.malformedPayload, "\(key) is not bytes") }
                bytes.append(narrow)
            }
            return bytes
        default: throw WireError(.malformedPayload, "\(key) is not bytes")
        }
    }
}

extension Submit: DirectWireMessage {
    var wireValue: WireValue {
        .map([("jobName", .string(jobName)), ("count", .int(Int64(count))), ("inputs", .bytes(inputs))])
    }

    init(wireValue: WireValue) throws(WireError) {
        self.init(jobName: try wireValue.string("jobName"), count: try wireValue.int("count"), inputs: try wireValue.bytes("inputs"))
    }
}

extension Outputs: DirectWireMessage {
    var wireValue: WireValue {
        .map([("count", .int(Int64(count))), ("outputs", .bytes(outputs))])
    }

    init(wireValue: WireValue) throws(WireError) {
        self.init(count: try wireValue.int("count"), outputs: try wireValue.bytes("outputs"))
    }
}

extension JobFailure: DirectWireMessage {
    var wireValue: WireValue {
        .map([
            ("index", .int(Int64(index))), ("completed", .bytes(completed)),
            ("errorType", .string(errorType)), ("message", .string(message)),
        ])
    }

    init(wireValue: WireValue) throws(WireError) {
        self.init(
            index: try wireValue.int("index"), completed: try wireValue.bytes("completed"),
            errorType: try wireValue.string("errorType"), message: try wireValue.string("message")
        )
    }
}
