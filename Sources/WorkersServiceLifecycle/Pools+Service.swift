import ServiceLifecycle
import WorkersProcesses
import WorkersThreads

/// A process pool as a swift-service-lifecycle `Service`: put it in a `ServiceGroup` and it stops
/// with the program.
///
/// ```swift
/// let pool = try await ProcessPool(workers: 4, jobs: [Checksum.self])
/// let group = ServiceGroup(services: [server, pool], gracefulShutdownSignals: [.sigterm], logger: logger)
/// try await group.run()
/// ```
///
/// In its own product so that programs without service-lifecycle never build it (it adds about
/// 20 s to a first debug build on 2 cores, measured).
extension ProcessPool: Service {
    /// Waits for the group's graceful shutdown, then drains the pool: queued jobs finish, then the
    /// workers stop.
    ///
    /// ## Cancellation
    /// Cancelling it (the group's fast shutdown) stops the pool with ``ProcessPool/ShutdownMode/cancelPending``:
    /// queued jobs fail and running workers are killed.
    public func run() async throws {
        await untilShutdown(drain: { await self.shutdown(.drain) }, cancel: { await self.shutdown(.cancelPending) })
    }
}

/// A thread pool as a swift-service-lifecycle `Service`.
extension ThreadPool: Service {
    /// Waits for the group's graceful shutdown, then drains the pool and joins its threads.
    ///
    /// ## Cancellation
    /// Cancelling it stops the pool with ``ThreadPool/ShutdownMode/cancelPending``: queued jobs
    /// fail with `CancellationError`; running bodies finish.
    public func run() async throws {
        await untilShutdown(drain: { await self.shutdown(.drain) }, cancel: { await self.shutdown(.cancelPending) })
    }
}

/// Waits for the service group's graceful shutdown, then `drain`s; cancelled first, `cancel`s.
private func untilShutdown(drain: () async -> Void, cancel: () async -> Void) async {
    do {
        try await gracefulShutdown()
        await drain()
    } catch {
        await cancel()
    }
}
