import CoreMetrics

/// The pool's swift-metrics instruments, created only when a factory is given.
///
/// - `<label>.busy` (meter): workers running a batch.
/// - `<label>.queue_depth` (gauge): batches waiting for a worker.
/// - `<label>.jobs` (counter): inputs answered.
/// - `<label>.batch_duration` (timer): from sending a batch to reading its answer.
/// - `<label>.worker_exits` (counter, dimension `reason`: `crashed`, `timed_out`,
///   `resource_limit`, `protocol_violation`, `lost`, `cancelled`, `recycled`, `retired`): workers replaced.
/// - `<label>.agents` (counter, dimension `event`: `joined`, `lost`, `left`, `refused`): node
///   agents of a pool placed beyond this machine.
package final class ProcessPoolMetrics: Sendable {
    private let label: String
    private let factory: any MetricsFactory
    private let busy: Meter
    private let queueDepth: Gauge
    private let jobs: Counter
    private let batchDuration: Timer

    init(label: String, factory: any MetricsFactory) {
        self.label = label
        self.factory = factory
        busy = Meter(label: "\(label).busy", dimensions: [], factory: factory)
        queueDepth = Gauge(label: "\(label).queue_depth", dimensions: [], factory: factory)
        jobs = Counter(label: "\(label).jobs", dimensions: [], factory: factory)
        batchDuration = Timer(label: "\(label).batch_duration", dimensions: [], factory: factory)
    }

    func queueDepthChanged(_ depth: Int) { queueDepth.record(depth) }
    func batchStarted() { busy.increment() }

    func batchEnded(answered inputs: Int?, nanoseconds: UInt64) {
        busy.decrement()
        if let inputs {
            jobs.increment(by: inputs)
            batchDuration.recordNanoseconds(Int64(clamping: nanoseconds))
        }
    }

    /// A node agent joined, was lost, left (drained or let go), or was refused.
    package func agentEvent(_ event: String) {
        Counter(label: "\(label).agents", dimensions: [("event", event)], factory: factory).increment()
    }

    func workerExited(_ reason: String) {
        Counter(label: "\(label).worker_exits", dimensions: [("reason", reason)], factory: factory).increment()
    }
}

extension ProcessPoolError.Code {
    /// The `reason` dimension of `worker_exits` for a worker lost this way.
    var metricsReason: String {
        switch self {
        case .workerCrashed: "crashed"
        case .timedOut: "timed_out"
        case .resourceLimit: "resource_limit"
        case .protocolViolation: "protocol_violation"
        case .workerLost: "lost"
        default: "other"
        }
    }
}
