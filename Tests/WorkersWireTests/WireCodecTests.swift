import Foundation
import Testing
@testable import WorkersWire

struct Sample: Codable, Equatable {
    enum Shape: Codable, Equatable {
        case circle(radius: Double)
        case polygon(sides: Int, name: String?)
        case none
    }

    var id: Int
    var small: Int8
    var tiny: UInt8
    var wide: UInt64
    var negative: Int64
    var ratio: Float
    var name: String
    var tags: [String]
    var scores: [String: Double]
    var maybe: Int?
    var missing: String?
    var bytes: [UInt8]
    var shapes: [Shape]
    var nested: [[Int]]
    var flag: Bool
}

let sample = Sample(
    id: -42, small: -128, tiny: 255, wide: .max, negative: .min, ratio: 0.25,
    name: "naïve café ☕️ \u{0}", tags: ["a", "", "ünïcödé"], scores: ["x": 1.5, "y": -.infinity],
    maybe: 7, missing: nil, bytes: [0, 1, 255], shapes: [.circle(radius: 2), .polygon(sides: 6, name: nil), .none],
    nested: [[], [1], [2, 3]], flag: true
)

@Suite struct WireCodecTests {
    @Test func roundTripsEveryKindOfValue() throws {
        let bytes = try WireEncoder().encode(sample)
        #expect(try WireDecoder().decode(Sample.self, from: bytes) == sample)
    }

    @Test(arguments: [0, 1, -1, 63, -64, 64, 127, 128, Int.max, Int.min])
    func roundTripsIntegerExtremes(value: Int) throws {
        #expect(try WireDecoder().decode(Int.self, from: WireEncoder().encode(value)) == value)
    }

    @Test func isSmallerThanJSON() throws {
        var finite = sample
        finite.scores["y"] = -1  // JSON cannot carry infinities at all; the wire form can
        let wire = try WireEncoder().encode(finite)
        let json = try JSONEncoder().encode(finite)
        #expect(wire.count < json.count)
    }

    @Test func byteArraysTravelAsRawBytes() throws {
        let payload = [UInt8](repeating: 7, count: 1000)
        let bytes = try WireEncoder().encode(payload)
        #expect(bytes.count <= 1003)  // tag, a 2-byte length, the bytes
        #expect(try WireDecoder().decode([UInt8].self, from: bytes) == payload)
    }

    @Test func aValueOfTheWrongShapeIsADecodingError() throws {
        let bytes = try WireEncoder().encode("text")
        #expect(throws: DecodingError.self) { try WireDecoder().decode(Int.self, from: bytes) }
        let big = try WireEncoder().encode(300)
        #expect(throws: DecodingError.self) { try WireDecoder().decode(UInt8.self, from: big) }
    }

    @Test func truncatedPayloadsAreMalformed() throws {
        let bytes = try WireEncoder().encode(sample)
        for cut in stride(from: 0, to: bytes.count - 1, by: 7) {
            #expect(throws: (any Error).self) { try WireDecoder().decode(Sample.self, from: Array(bytes[0..<cut])) }
        }
        #expect(throws: WireError.self) { try WireDecoder().decode(Sample.self, from: bytes + [0]) }
    }

    @Test func hostileLengthsAndNestingAreErrorsNotCrashes() {
        // An array claiming 2^62 elements in a 12-byte payload.
        let huge: [UInt8] = [8, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40]
        #expect(throws: WireError.self) { try WireDecoder().decode([Int].self, from: huge) }
        // 10,000 nested arrays.
        let deep: [UInt8] = Array(repeating: [8, 1] as [UInt8], count: 10_000).flatMap { $0 }
        #expect(throws: WireError.self) { try WireDecoder().decode([Int].self, from: deep) }
        // A varint that never ends.
        #expect(throws: WireError.self) { try WireDecoder().decode(Int.self, from: [3] + [UInt8](repeating: 0xFF, count: 20)) }
    }

    @Test(arguments: 0..<30)
    func randomBytesNeverCrashTheDecoder(seed: UInt64) {
        var rng = SplitMix64(state: 77 + seed)
        let bytes = (0..<Int.random(in: 0...200, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        _ = try? WireDecoder().decode(Sample.self, from: bytes)
        _ = try? WireDecoder().decode([String: [Int]].self, from: bytes)
    }

    @Test func messagesTravelInFrames() throws {
        let submit = Submit(jobName: "checksum", count: 2, inputs: try WireEncoder().encode([[1, 2], [3]] as [[UInt8]]))
        let frame = try Frame(kind: .submit, requestID: 9, message: submit)
        var decoder = FrameDecoder()
        decoder.feed(try frame.encoded())
        let received = try #require(try decoder.next())
        #expect(try received.decode(Submit.self) == submit)
        #expect(throws: WireError.self) { try received.decode(Welcome.self) }
    }
}

@Suite struct HandshakeTests {
    @Test func aWorkerWelcomesADriverWhoseJobsItKnows() throws {
        let hello = Hello(workerID: 3, jobNames: ["a", "b"])
        let welcome = try Handshake.answer(hello, jobNames: ["a", "b", "c"], processID: 99).get()
        #expect(welcome.workerID == 3)
        #expect(try Handshake.check(welcome, needs: ["a", "b"]).get() == welcome)
    }

    @Test func unknownJobsAreNamed() {
        let hello = Hello(workerID: 1, jobNames: ["a", "zip"])
        #expect(throws: WireError(.unknownJobs(["zip"]))) { try Handshake.answer(hello, jobNames: ["a"], processID: 1).get() }
        let welcome = Welcome(workerID: 1, processID: 1, jobNames: ["a"])
        #expect(throws: WireError(.unknownJobs(["b"]))) { try Handshake.check(welcome, needs: ["a", "b"]).get() }
    }

    @Test func anotherProtocolVersionIsRefused() {
        var hello = Hello(workerID: 1, jobNames: [])
        hello.protocolVersion = WireProtocol.version + 1
        #expect(throws: WireError(.versionMismatch(local: WireProtocol.version, remote: WireProtocol.version + 1))) {
            try Handshake.answer(hello, jobNames: [], processID: 1).get()
        }
    }
}

@Suite struct DirectMessageTests {
    /// The Codable path, which the top-level encoder skips for these messages.
    func codableBytes<T: Encodable>(_ value: T) throws -> [UInt8] {
        let root = EncodingNode()
        try WireEncoder.encode(value, into: root, codingPath: [])
        var out: [UInt8] = []
        root.value.write(to: &out)
        return out
    }

    func codableValue<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        var index = 0
        return try WireDecoder.decode(type, from: WireValue.read(from: bytes, at: &index), codingPath: [])
    }

    /// The fast path writes what the Codable path writes, and each reads what the other wrote.
    @Test func fastPathsMatchTheCodablePath() throws {
        let submit = Submit(jobName: "j", count: 2, inputs: [1, 2, 3])
        let outputs = Outputs(count: 1, outputs: [9])
        let failure = JobFailure(index: 1, completed: [4], errorType: "E", message: "m")
        #expect(try WireEncoder().encode(submit) == codableBytes(submit))
        #expect(try WireEncoder().encode(outputs) == codableBytes(outputs))
        #expect(try WireEncoder().encode(failure) == codableBytes(failure))
        #expect(try WireDecoder().decode(Submit.self, from: codableBytes(submit)) == submit)
        #expect(try codableValue(JobFailure.self, from: WireEncoder().encode(failure)) == failure)
        #expect(try Frame(kind: .result, message: outputs).decode(Outputs.self) == outputs)
    }

    @Test func aMissingFieldIsMalformed() throws {
        let payload = try WireEncoder().encode(["jobName": "j"])
        #expect(throws: WireError.self) { try Frame(kind: .submit, payload: payload).decode(Submit.self) }
    }
}

/// Arrays of scalars take a fast path; it must write the same bytes as the general coder (which
/// `ContiguousArray` still goes through) and read back what it wrote.
@Suite struct ScalarArrayTests {
    private func sameAsGeneral<T: Codable & Equatable>(_ values: [T]) throws {
        let fast = try WireEncoder().encode(values)
        let general = try WireEncoder().encode(ContiguousArray(values))
        #expect(fast == general)
        #expect(try WireDecoder().decode([T].self, from: fast) == values)
        #expect(try Array(WireDecoder().decode(ContiguousArray<T>.self, from: fast)) == values)
    }

    @Test func everyScalarMatchesTheGeneralCoder() throws {
        try sameAsGeneral([0, 1, -1, 300, Int.max, Int.min])
        try sameAsGeneral([Int64.min, 0, Int64.max])
        try sameAsGeneral([Int32.min, -7, Int32.max])
        try sameAsGeneral([Int16.min, Int16.max])
        try sameAsGeneral([Int8.min, 0, Int8.max])
        try sameAsGeneral([UInt.max, 0, 128])
        try sameAsGeneral([UInt64.max, 1])
        try sameAsGeneral([UInt32.max, 2])
        try sameAsGeneral([UInt16.max, 3])
        try sameAsGeneral([true, false, true])
        try sameAsGeneral([0.0, -1.5, .infinity, Double.leastNonzeroMagnitude])
        try sameAsGeneral(["", "héllo", "a\u{0}b", String(repeating: "x", count: 300)])
        try sameAsGeneral([Int]())
    }

    @Test func integersCrossBetweenSignedAndUnsignedWhenTheyFit() throws {
        let bytes = try WireEncoder().encode([UInt64(5), UInt64(7)])
        #expect(try WireDecoder().decode([Int].self, from: bytes) == [5, 7])
        let negative = try WireEncoder().encode([-1])
        #expect(throws: DecodingError.self) { try WireDecoder().decode([UInt].self, from: negative) }
        let wide = try WireEncoder().encode([Int.max])
        #expect(throws: DecodingError.self) { try WireDecoder().decode([Int8].self, from: wide) }
    }

    @Test(arguments: 0..<30)
    func garbageIsAnErrorNotACrash(seed: UInt64) throws {
        var random = SplitMix64(state: seed)
        var bytes = try WireEncoder().encode((0..<50).map { _ in Int.random(in: .min ... .max, using: &random) })
        for _ in 0..<4 { bytes[Int.random(in: 0..<bytes.count, using: &random)] = UInt8.random(in: 0...255, using: &random) }
        bytes.removeLast(Int.random(in: 0..<3, using: &random))
        _ = try? WireDecoder().decode([Int].self, from: bytes)  // an error or a value, never a trap
    }
}
