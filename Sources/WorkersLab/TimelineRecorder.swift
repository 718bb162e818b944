#if canImport(Glibc)
import Glibc
#endif
import CWorkersShims
import WorkersCore

/// Collects a cell's timeline from any thread: spans of running, waiting and waiting for the GIL,
/// per lane (a thread or a process), in seconds from the recorder's start.
public final class TimelineRecorder: @unchecked Sendable {  // @unchecked: state is guarded by `lock`.
    private let lock = PthreadLock()
    private let origin: UInt64
    private var spans: [LabSpan] = []
    private var open: [Int: (task: Int, start: Double)] = [:]
    private var lanes: [pid_t: Int] = [:]
    private let limit: Int

    /// - Parameter limit: spans kept; later ones are dropped (a GIL timeline can have thousands).
    public init(limit: Int = 4_000) {
        origin = monotonicNanoseconds()
        self.limit = limit
    }

    /// Seconds since the recorder was made.
    public func now() -> Double { seconds(at: monotonicNanoseconds()) }

    /// Seconds since the recorder was made, for a CLOCK_MONOTONIC reading in nanoseconds (from any
    /// process on this machine: the clock is system-wide).
    public func seconds(at monotonicNanoseconds: UInt64) -> Double {
        Double(Int64(bitPattern: monotonicNanoseconds &- origin)) / 1e9
    }

    /// The lane of the calling thread: 0, 1, … in order of first appearance.
    public func laneForCurrentThread() -> Int { lane(for: cworkers_gettid()) }

    /// The lane of a thread or process id: 0, 1, … in order of first appearance.
    public func lane(for id: pid_t) -> Int {
        lock.withLock {
            if let lane = lanes[id] { return lane }
            let lane = lanes.count
            lanes[id] = lane
            return lane
        }
    }

    /// Records a finished span.
    public func record(thread lane: Int, task: Int, from start: Double, to end: Double, state: LabSpanState) {
        lock.withLock {
            guard spans.count < limit else { return }
            spans.append(LabSpan(lane: lane, task: task, start: start, end: max(start, end), state: state))
        }
    }

    /// Opens a span on `lane` now (closed by ``end(thread:task:state:)``).
    public func begin(thread lane: Int, task: Int, at start: Double) {
        lock.withLock { open[lane] = (task, start) }
    }

    /// Closes the span open on `lane`, with `state`.
    public func end(thread lane: Int, task: Int, state: LabSpanState) {
        let end = now()
        lock.withLock {
            guard let (openTask, start) = open.removeValue(forKey: lane), spans.count < limit else { return }
            spans.append(LabSpan(lane: lane, task: openTask, start: start, end: end, state: state))
        }
    }

    /// Runs `body` as a span of `state` on `lane`.
    public func span<T>(thread lane: Int, task: Int, _ state: LabSpanState, _ body: () throws -> T) rethrows -> T {
        let start = now()
        defer { record(thread: lane, task: task, from: start, to: now(), state: state) }
        return try body()
    }

    /// The spans so far, by start time.
    public var recorded: [LabSpan] {
        lock.withLock { spans.sorted { ($0.start, $0.lane) < ($1.start, $1.lane) } }
    }
}
