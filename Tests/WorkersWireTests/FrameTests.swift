import Testing
@testable import WorkersWire

/// A small deterministic generator, so property tests print a seed that reproduces a failure.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476C_E484_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func randomFrame(_ rng: inout SplitMix64) -> Frame {
    let kind = Frame.Kind.allCases.randomElement(using: &rng)!
    let size = Int.random(in: 0..<300, using: &rng)
    let payload = (0..<size).map { _ in UInt8.random(in: 0...255, using: &rng) }
    return Frame(kind: kind, requestID: UInt64.random(in: 0...UInt64.max, using: &rng), payload: payload)
}

@Suite struct FrameTests {
    @Test func encodesTheDocumentedLayout() throws {
        let bytes = try Frame(kind: .submit, requestID: 0x0102, payload: [0xAA, 0xBB]).encoded()
        #expect(bytes == [0, 0, 0, 11, 4, 0, 0, 0, 0, 0, 0, 1, 2, 0xAA, 0xBB])
    }

    @Test func theSenderEnforcesTheLimitToo() {
        let frame = Frame(kind: .result, payload: [UInt8](repeating: 1, count: 100))
        #expect(throws: WireError(.badFrameLength(length: 109, limit: 50), "refusing to send")) {
            try frame.encoded(maxFrameSize: 50)
        }
    }

    @Test func decodesFramesFedByteByByte() throws {
        var rng = SplitMix64(state: 1)
        let frames = (0..<50).map { _ in randomFrame(&rng) }
        var stream: [UInt8] = []
        for frame in frames { try frame.encode(into: &stream) }
        var decoder = FrameDecoder()
        var decoded: [Frame] = []
        for byte in stream {
            decoder.feed([byte])
            while let frame = try decoder.next() { decoded.append(frame) }
        }
        #expect(decoded == frames)
        #expect(decoder.bufferedByteCount == 0)
    }

    @Test(arguments: 0..<20)
    func decodesFramesInRandomSplits(seed: UInt64) throws {
        var rng = SplitMix64(state: seed)
        let frames = (0..<40).map { _ in randomFrame(&rng) }
        var stream: [UInt8] = []
        for frame in frames { try frame.encode(into: &stream) }
        var decoder = FrameDecoder()
        var decoded: [Frame] = []
        var offset = 0
        while offset < stream.count {
            let cut = min(stream.count, offset + Int.random(in: 1...700, using: &rng))
            decoder.feed(stream[offset..<cut])
            offset = cut
            while let frame = try decoder.next() { decoded.append(frame) }
        }
        #expect(decoded == frames, "seed \(seed)")
    }

    @Test func anOversizedLengthFailsBeforeThePayloadArrives() {
        var decoder = FrameDecoder(maxFrameSize: 1024)
        decoder.feed([0x00, 0x10, 0x00, 0x00])  // 1 MiB announced, nothing else sent
        #expect(throws: WireError(.badFrameLength(length: 1 << 20, limit: 1024))) { try decoder.next() }
        #expect(throws: WireError.self) { try decoder.next() }  // the error sticks
    }

    @Test func aLengthTooShortForTheHeaderFails() {
        var decoder = FrameDecoder()
        decoder.feed([0, 0, 0, 3, 1, 2, 3])
        #expect(throws: WireError(.badFrameLength(length: 3, limit: WireProtocol.defaultMaxFrameSize))) { try decoder.next() }
    }

    @Test func anUnknownKindFails() {
        var decoder = FrameDecoder()
        decoder.feed([0, 0, 0, 9, 99, 0, 0, 0, 0, 0, 0, 0, 0])
        #expect(throws: WireError(.unknownFrameKind(99))) { try decoder.next() }
    }

    @Test(arguments: 0..<50)
    func randomGarbageIsAnErrorOrIncompleteNeverACrash(seed: UInt64) {
        var rng = SplitMix64(state: 1000 + seed)
        let limit = 4096
        var decoder = FrameDecoder(maxFrameSize: limit)
        var fed: [UInt8] = []
        var failure: WireError?
        feeding: for _ in 0..<64 {
            let bytes = (0..<Int.random(in: 1...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            fed += bytes
            decoder.feed(bytes)
            do {
                while try decoder.next() != nil {}
            } catch {
                failure = error
                break feeding
            }
        }
        if let failure {
            // The error sticks: a stream that lost its framing is never read further.
            #expect(throws: failure) { try decoder.next() }
        } else {
            // Still waiting: what is buffered is one frame in progress, whose announced length is
            // legal, and no more than that frame.
            #expect(decoder.bufferedByteCount < 4 + limit, "seed \(seed)")
            let pending = Array(fed.suffix(decoder.bufferedByteCount))
            if pending.count >= 4 {
                let length = pending[0..<4].reduce(0) { $0 << 8 | Int($1) }
                #expect((Frame.headerSize...limit).contains(length), "seed \(seed)")
                #expect(pending.count < 4 + length, "seed \(seed)")
            }
        }
    }
}
