// libFuzzer target for the wire protocol: frames and payloads from hostile bytes must be a
// WireError or a decoding error, never a crash, a hang or unbounded memory.
// Built by Fuzz/run.sh with `swiftc -sanitize=fuzzer,address` together with Sources/WorkersWire.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWire(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))

    // 1. The whole input as a stream, in splits chosen by its first byte.
    var decoder = FrameDecoder(maxFrameSize: 1 << 16)
    let step = max(1, Int(bytes.first ?? 1))
    var offset = 0
    streaming: while offset < bytes.count {
        let end = min(bytes.count, offset + step)
        decoder.feed(bytes[offset..<end])
        offset = end
        do {
            while let frame = try decoder.next() {
                _ = try? frame.decode(Submit.self)
                _ = try? frame.decode(Hello.self)
                _ = try? frame.decode(Welcome.self)
                _ = try? frame.decode(Outputs.self)
                if frame.kind == .heartbeat, let welcome = try? frame.decode(Welcome.self) {
                    _ = Handshake.check(welcome, needs: ["a"], hello: Hello(workerID: 0, jobNames: ["a"], heartbeatMilliseconds: 1_000, lostAfterMilliseconds: 10_000))
                }
                _ = try? frame.decode(JobFailure.self)
            }
        } catch {
            break streaming
        }
    }

    // 2. The whole input as a payload.
    _ = try? WireDecoder().decode(Submit.self, from: bytes)
    if let hello = try? WireDecoder().decode(Hello.self, from: bytes) {
        _ = Handshake.answer(hello, jobNames: ["a", "b"], processID: 1)  // any version, any heartbeat
    }
    _ = try? WireDecoder().decode([String: [Double?]].self, from: bytes)
    return 0
}
