import WorkersCore

/// Picks how many inputs go into the next chunk of a `map`, as joblib's auto batching does: start
/// small, measure how long chunks take in the workers, and size the next one to take about
/// `target` — large enough that the round trip's fixed cost (tens of microseconds) vanishes, small
/// enough that the workers share the tail of the work evenly.
///
/// Pure: it sees only the measurements it is given.
struct ChunkSizer {
    /// The time a chunk should take in a worker.
    static let target: Duration = .milliseconds(5)

    private let explicit: Int?
    private let ceiling: Int
    private let targetNanoseconds: Double
    private(set) var size: Int
    /// Decayed sums of measured time and inputs: their ratio is the time per input, weighted by
    /// inputs, so a big recent chunk outweighs the small first ones whose time is mostly fixed cost.
    private var measuredNanoseconds = 0.0
    private var measuredInputs = 0.0

    /// - Parameters:
    ///   - chunkSize: a size the caller chose; then no adapting.
    ///   - knownCount: how many inputs there are, if known (0 when not).
    ///   - workers: the pool's workers.
        init(chunkSize: Int?, knownCount: Int, workers: Int, target: Duration = ChunkSizer.target) {
        explicit = chunkSize
        // With a known count, no chunk is bigger than a quarter of a worker's share: the last
        // chunks then end close together.
        ceiling = knownCount > 0 ? max(1, knownCount / (workers * 4)) : 100_000
        targetNanoseconds = Double(target.saturatingNanoseconds)
        size = chunkSize ?? 1
    }

    /// Records that a chunk of `count` inputs took `nanoseconds` in a worker, and sizes the next.
        mutating func record(count: Int, nanoseconds: UInt64) {
        guard explicit == nil, count > 0 else { return }
        measuredNanoseconds = measuredNanoseconds / 2 + Double(max(nanoseconds, 1))
        measuredInputs = measuredInputs / 2 + Double(count)
        let perInput = measuredNanoseconds / measuredInputs
        let ideal = Int(min(targetNanoseconds / perInput, Double(ceiling)))
        // Grow at most 16-fold a step (a first chunk's time is mostly fixed cost), shrink at once.
        size = max(1, min(ideal, size * 16, ceiling))
    }
}
