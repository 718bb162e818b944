/// A pool that runs ``Job``s: `ThreadPool` and `ProcessPool` both are, so code can be written once
/// and told where to run.
///
/// ```swift
/// func checksums(_ blobs: [[UInt8]], on pool: some JobPool) async throws -> [UInt64] {
///     try await pool.map(Checksum.self, blobs)
/// }
/// let onThreads = try await checksums(blobs, on: threads)
/// let inProcesses = try await checksums(blobs, on: processes)   // same results, isolated
/// ```
///
/// Each pool's own methods take more options (`maxInFlight:` on threads; `chunkSize:` and
/// `timeout:` on processes); these requirements are the calls with their defaults.
public protocol JobPool: Sendable {
    /// Runs `job` on `input`.
    ///
    /// ## Cancellation
    /// A queued job is dropped at once and throws `CancellationError`; a running one is stopped
    /// as the pool can (a thread pool's job sees `Task.isCancelled`; a process pool kills its worker).
    func run<J: Job>(_ job: J.Type, _ input: J.Input) async throws -> J.Output

    /// Runs `job` on every input; outputs in input order.
    ///
    /// ## Cancellation
    /// Cancelling the caller stops the remaining inputs; it throws `CancellationError`.
    func map<J: Job, S: Sequence & Sendable>(_ job: J.Type, _ inputs: S) async throws -> [J.Output] where S.Element == J.Input

    /// Runs `job` on every input; `(index, output)` pairs in completion order.
    ///
    /// ## Cancellation
    /// Cancelling the consumer, or dropping the iterator, stops the remaining inputs.
    func mapUnordered<J: Job, S: Sequence & Sendable>(_ job: J.Type, _ inputs: S) -> IndexedResults<J.Output> where S.Element == J.Input
}
