/// Results of a `mapUnordered` on any pool: `(index, value)` pairs in completion order.
///
/// Nothing runs until the first `next()`: then the producer starts as a task and sends each result
/// into a bounded ``AsyncQueue``, so a consumer that stops reading holds the producer back.
/// Single-pass: iterate it once.
public struct IndexedResults<Value: Sendable>: AsyncSequence, Sendable {
    /// A result and the index of its input.
    public typealias Element = (index: Int, value: Value)
    /// The first error the work threw, or `CancellationError`.
    public typealias Failure = any Error
    /// Where a producer sends results; a `.failure` ends the sequence with that error.
    package typealias Channel = AsyncQueue<Result<(Int, Value), any Error>>

    private let capacity: Int
    private let produce: @Sendable (Channel) async -> Void

    /// A sequence whose producer sends at most `capacity` results ahead of the consumer. The
    /// producer finishes the channel when it is done.
    package init(capacity: Int, produce: @escaping @Sendable (Channel) async -> Void) {
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
        /// remaining work.
        public mutating func next() async throws -> Element? {
            try await driver.next()
        }
    }

    /// Owns the producing task: started by the first `next()`, cancelled when the iterator is
    /// dropped or the consumer fails.
    final class Driver: @unchecked Sendable {  // @unchecked: `producer` and `done` are guarded by `lock`.
        private let channel: Channel
        private let produce: @Sendable (Channel) async -> Void
        private let lock = PthreadLock()
        private var producer: Task<Void, Never>?
        private var done = false

        init(capacity: Int, produce: @escaping @Sendable (Channel) async -> Void) {
            channel = AsyncQueue(capacity: Swift.max(1, capacity))
            self.produce = produce
        }

        deinit {
            producer?.cancel()
            channel.finish()
        }

        func next() async throws -> Element? {
            let finished: Bool = lock.withLock {
                if !done, producer == nil {
                    let channel = self.channel
                    let produce = self.produce
                    producer = Task { await produce(channel) }
                }
                return done
            }
            if finished { return nil }
            do {
                guard let item = try await channel.next() else {
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
                channel.finish()
                throw error
            }
        }
    }
}
