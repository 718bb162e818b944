import WorkersCore

/// Streams `mapUnordered` results to the consumer through the bounded channel of
/// ``IndexedResults`` (the backpressure).
final class StreamSink<Value: Sendable>: ResultSink, Sendable {
    let channel: IndexedResults<Value>.Channel

    init(_ channel: IndexedResults<Value>.Channel) {
        self.channel = channel
    }

    func makeBuffer() {}
    func flush(_ buffer: inout ()) {}

    func store(index: Int, _ value: Value, buffer: inout ()) async -> Bool {
        do {
            try await channel.send(.success((index, value)))
            return true
        } catch {
            return false  // the consumer went away, or this loop was cancelled
        }
    }

    func fail(index: Int, _ error: any Error) async {
        // Fails only if the consumer has gone (channel finished) or this producer was cancelled.
        try? await channel.send(.failure(error))
    }

    func finish() async { channel.finish() }
}
