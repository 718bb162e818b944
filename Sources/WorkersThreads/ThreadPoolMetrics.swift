import CoreMetrics

/// The pool's swift-metrics instruments, created only when a factory is given.
///
/// - `<label>.threads` (gauge): threads alive.
/// - `<label>.busy` (gauge): jobs admitted by `run`/`map` and running.
/// - `<label>.queue_depth` (gauge): jobs waiting for a slot.
/// - `<label>.completed` (counter): jobs finished.
final class ThreadPoolMetrics: Sendable {
    private let threads: Gauge
    private let busy: Meter
    private let queueDepth: Gauge
    private let completed: Counter

    init(label: String, factory: any MetricsFactory) {
        threads = Gauge(label: "\(label).threads", dimensions: [], factory: factory)
        busy = Meter(label: "\(label).busy", dimensions: [], factory: factory)
        queueDepth = Gauge(label: "\(label).queue_depth", dimensions: [], factory: factory)
        completed = Counter(label: "\(label).completed", dimensions: [], factory: factory)
    }

    func threadsChanged(_ count: Int) { threads.record(count) }
    func queueDepthChanged(_ depth: Int) { queueDepth.record(depth) }
    func jobStarted() { busy.increment() }
    func jobFinished(queued: Int) {
        busy.decrement()
        completed.increment()
        queueDepth.record(queued)
    }
}
