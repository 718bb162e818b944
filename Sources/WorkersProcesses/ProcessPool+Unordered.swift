import WorkersCore
import WorkersWire

extension ProcessPool {
    /// Runs `job` on every input in the worker processes and yields `(index, output)` pairs as
    /// chunks complete.
    ///
    /// Nothing starts until iteration begins; at most two chunks per worker are in flight, and a
    /// consumer that stops reading holds the producer back.
    ///
    /// - Parameters:
    ///   - job: the job type.
    ///   - inputs: the inputs, consumed lazily.
    ///   - chunkSize: inputs per batch; default as ``map(_:_:chunkSize:timeout:)``.
    ///   - timeout: per batch.
    /// - Returns: a single-pass sequence of `(index, output)`; it throws the first failure.
    ///
    /// ## Cancellation
    /// Cancelling the consumer, or dropping the iterator, stops submitting chunks and cancels the
    /// running ones (their workers are killed and replaced).
    public func mapUnordered<J: Job, S: Sequence & Sendable>(
        _ job: J.Type, _ inputs: S, chunkSize: Int? = nil, timeout: Duration? = nil
    ) -> UnorderedOutputs<J.Output> where S.Element == J.Input {
        let size = chunkSize ?? max(1, min(10_000, inputs.underestimatedCount / (workers * 4)))
        precondition(size >= 1, "chunkSize must be at least 1 (got \(size))")
        let window = workers * 2
        let state = self.state
        return UnorderedOutputs(capacity: window * size) { queue in
            do {
                var iterator = inputs.makeIterator()
                var firstIndex = 0
                try await withThrowingTaskGroup(of: (Int, [J.Output]).self) { group in
                    func submitNext() throws -> Bool {
                        var chunk: [J.Input] = []
                        while chunk.count < size, let input = iterator.next() { chunk.append(input) }
                        guard !chunk.isEmpty else { return false }
                        let start = firstIndex
                        firstIndex += chunk.count
                        let encoded = try WireEncoder().encode(chunk)
                        let count = chunk.count
                        group.addTask {
                            let outputs = try await state.submit(jobName: J.name, inputs: encoded, count: count, firstIndex: start, timeout: timeout)
                            return (start, try WireDecoder().decode([J.Output].self, from: outputs))
                        }
                        return true
                    }
                    var inFlight = 0
                    while inFlight < window, try submitNext() { inFlight += 1 }
                    while let (start, outputs) = try await group.next() {
                        for (offset, output) in outputs.enumerated() { try await queue.send(.success((start + offset, output))) }
                        if try !submitNext() { inFlight -= 1 }
                    }
                }
            } catch {
                try? await queue.send(.failure(error))
            }
            queue.finish()
        }
    }

    /// The results of ``ProcessPool/mapUnordered(_:_:chunkSize:timeout:)``: `(index, output)` in
    /// completion order. Single-pass.
    public struct UnorderedOutputs<Output: Sendable>: AsyncSequence, Sendable {
        /// An output and the index of its input.
        public typealias Element = (index: Int, output: Output)
        /// The first failure, or `CancellationError`.
        public typealias Failure = any Error

        let capacity: Int
        let produce: @Sendable (AsyncQueue<Result<(Int, Output), any Error>>) async -> Void

        /// Starts the work and returns the iterator that receives its results.
        public func makeAsyncIterator() -> Iterator {
            Iterator(driver: Driver(capacity: capacity, produce: produce))
        }

        /// Receives the results as they complete.
        public struct Iterator: AsyncIteratorProtocol {
            let driver: Driver

            /// The next `(index, output)`, or `nil` when every input is done.
            ///
            /// ## Cancellation
            /// Throws `CancellationError` if the task is cancelled while waiting, and stops the rest.
            public mutating func next() async throws -> Element? {
                try await driver.next()
            }
        }

        /// Owns the producing task: started by the first `next()`, cancelled when dropped.
        final class Driver: @unchecked Sendable {  // @unchecked: `producer` and `done` are guarded by `lock`.
            private let queue: AsyncQueue<Result<(Int, Output), any Error>>
            private let produce: @Sendable (AsyncQueue<Result<(Int, Output), any Error>>) async -> Void
            private let lock = PthreadLock()
            private var producer: Task<Void, Never>?
            private var done = false

            init(capacity: Int, produce: @escaping @Sendable (AsyncQueue<Result<(Int, Output), any Error>>) async -> Void) {
                queue = AsyncQueue(capacity: Swift.max(1, capacity))
                self.produce = produce
            }

            deinit {
                producer?.cancel()
                queue.finish()
            }

            func next() async throws -> Element? {
                let finished: Bool = lock.withLock {
                    if !done, producer == nil {
                        let queue = self.queue
                        let produce = self.produce
                        producer = Task { await produce(queue) }
                    }
                    return done
                }
                if finished { return nil }
                do {
                    guard let item = try await queue.next() else {
                        lock.withLock { done = true }
                        return nil
                    }
                    let (index, output) = try item.get()
                    return (index, output)
                } catch {
                    let producer: Task<Void, Never>? = lock.withLock {
                        done = true
                        return self.producer
                    }
                    producer?.cancel()
                    queue.finish()
                    throw error
                }
            }
        }
    }
}
