/// A unit of work with a Codable input and output that runs unchanged on any pool: a
/// ``ThreadPool`` today, a `ProcessPool` or a remote worker later.
///
/// ```swift
/// struct Checksum: Job {
///     static let name = "checksum"
///     func run(_ input: [UInt8]) async throws -> UInt64 { … }
/// }
/// let sum = try await pool.run(Checksum.self, bytes)
/// ```
///
/// A job is created with `init()` wherever it runs, so it carries no state of the caller's: what
/// it needs comes in its `Input`. Errors it throws reach the caller.
public protocol Job: Sendable {
    /// What the job takes; sent over the wire when the job runs in another process.
    associatedtype Input: Codable & Sendable
    /// What the job returns; sent back over the wire when the job runs in another process.
    associatedtype Output: Codable & Sendable

    /// The job's stable wire name: both sides of a process pool find the job by it, so it must not
    /// change between versions that talk to each other.
    static var name: String { get }

    /// Creates the job where it runs.
    init()

    /// Runs the job.
    ///
    /// ## Cancellation
    /// Runs inside the caller's task on a thread pool, so `Task.isCancelled` reports the caller's
    /// cancellation; a long job should check it.
    func run(_ input: Input) async throws -> Output
}
