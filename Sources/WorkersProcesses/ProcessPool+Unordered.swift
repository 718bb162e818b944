import WorkersCore

extension ProcessPool {
    /// Runs `job` on every input in the worker processes and yields `(index, value)` pairs as
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
    /// - Returns: a single-pass sequence of `(index, value)`; it throws the first failure.
    ///
    /// ## Cancellation
    /// Cancelling the consumer, or dropping the iterator, stops submitting chunks and cancels the
    /// running ones (their workers are killed and replaced).
    public func mapUnordered<J: Job, S: Sequence & Sendable>(
        _ job: J.Type, _ inputs: S, chunkSize: Int? = nil, timeout: Duration? = nil
    ) -> IndexedResults<J.Output> where S.Element == J.Input {
        if let chunkSize { precondition(chunkSize >= 1, "chunkSize must be at least 1 (got \(chunkSize))") }
        let capacity = workers * 2 * (chunkSize ?? 64)
        return IndexedResults(capacity: capacity) { channel in
            do {
                try await self.forEachChunk(job, inputs, chunkSize: chunkSize, timeout: timeout) { start, outputs in
                    for (offset, output) in outputs.enumerated() { try await channel.send(.success((start + offset, output))) }
                }
            } catch {
                try? await channel.send(.failure(error))
            }
            channel.finish()
        }
    }
}

extension ProcessPool: JobPool {
    /// ``run(_:_:timeout:)`` with no time-out, as ``JobPool`` asks.
    ///
    /// ## Cancellation
    /// As ``run(_:_:timeout:)``: the worker running it is killed and replaced.
    public func run<J: Job>(_ job: J.Type, _ input: J.Input) async throws -> J.Output {
        try await run(job, input, timeout: nil)
    }

    /// ``map(_:_:chunkSize:timeout:)`` with adaptive chunks and no time-out, as ``JobPool`` asks.
    ///
    /// ## Cancellation
    /// As ``map(_:_:chunkSize:timeout:)``.
    public func map<J: Job, S: Sequence & Sendable>(_ job: J.Type, _ inputs: S) async throws -> [J.Output] where S.Element == J.Input {
        try await map(job, inputs, chunkSize: nil, timeout: nil)
    }

    /// ``mapUnordered(_:_:chunkSize:timeout:)`` with adaptive chunks and no time-out, as
    /// ``JobPool`` asks.
    ///
    /// ## Cancellation
    /// As ``mapUnordered(_:_:chunkSize:timeout:)``.
    public func mapUnordered<J: Job, S: Sequence & Sendable>(_ job: J.Type, _ inputs: S) -> IndexedResults<J.Output> where S.Element == J.Input {
        mapUnordered(job, inputs, chunkSize: nil, timeout: nil)
    }
}
