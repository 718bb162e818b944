import WorkersCore

extension ThreadPool {
    /// The results of ``ThreadPool/mapUnordered(_:maxInFlight:_:)``: `(index, value)` pairs in
    /// completion order. Single-pass: iterate it once.
    public struct UnorderedResults<Value: Sendable>: AsyncSequence, Sendable {
        /// A result and the index of its input.
        public typealias Element = (index: Int, value: Value)
        /// The first error a body threw, or `CancellationError`.
        public typealias Failure = any Error

        let capacity: Int
        let produce: @Sendable (StreamSink<Value>) async -> Void

        init(capacity: Int, produce: @escaping @Sendable (StreamSink<Value>) async -> Void) {
            self.capacity = capacity
            self.produce = produce
        }

        /// Starts the work and returns the iterator that receives its results.
        public func makeAsyncIterator() -> Iterator {
            Iterator(driver: Driver(capacity: capacity, produce: produce))
        }

        /// Receives the results as they complete.
        public struct Iterator: AsyncIteratorProtocol {
            let driver: Driver

            /// The next `(index, value)`, or `nil` when every input is done.
            ///
            /// ## Cancellation
            /// Throws `CancellationError` if the task is cancelled while waiting, and stops the
            /// remaining inputs.
            public mutating func next() async throws -> Element? {
                try await driver.next()
            }
        }

        /// Owns the producing task: started by the first `next()`, cancelled when the iterator is
        /// dropped or the consumer fails.
        final class Driver: @unchecked Sendable {  // @unchecked: `producer` is guarded by `lock`.
            private let sink: StreamSink<Value>
            private let produce: @Sendable (StreamSink<Value>) async -> Void
            private let lock = PthreadLock()
            private var producer: Task<Void, Never>?
            private var done = false

            init(capacity: Int, produce: @escaping @Sendable (StreamSink<Value>) async -> Void) {
                sink = StreamSink(capacity: capacity)
                self.produce = produce
            }

            deinit {
                producer?.cancel()
                sink.close()
            }

            func next() async throws -> Element? {
                let finished: Bool = lock.withLock {
                    if !done, producer == nil {
                        let sink = self.sink
                        let produce = self.produce
                        producer = Task { await produce(sink) }
                    }
                    return done
                }
                if finished { return nil }
                do {
                    guard let item = try await sink.queue.next() else {
                        lock.withLock { done = true }
                        return nil
                    }
                    let (index, value) = try item.get()
                    return (index, value)
                } catch {
                    let producer: Task<Void, Never>? = lock.withLock {
                        done = true
                        return self.producer
                    }
                    producer?.cancel()
                    sink.close()
                    throw error
                }
            }
        }
    }
}

/// Streams `mapUnordered` results to the consumer through a bounded queue (the backpressure).
final class StreamSink<Value: Sendable>: ResultSink, Sendable {
    let queue: AsyncQueue<Result<(Int, Value), any Error>>

    init(capacity: Int) {
        queue = AsyncQueue(capacity: capacity)
    }

    func makeBuffer() {}
    func flush(_ buffer: inout ()) {}

    func store(index: Int, _ value: Value, buffer: inout ()) async -> Bool {
        do {
            try await queue.send(.success((index, value)))
            return true
        } catch {
            return false  // the consumer went away, or this loop was cancelled
        }
    }

    func fail(index: Int, _ error: any Error) async {
        // Fails only if the consumer has gone (queue finished) or this producer was cancelled.
        try? await queue.send(.failure(error))
    }

    func finish() async { queue.finish() }

    func close() { queue.finish() }
}
