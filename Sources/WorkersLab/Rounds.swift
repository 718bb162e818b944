/// Several rounds of the lab merged into one table. Each round runs every mode of every workload
/// (Swift, then CPython), so the modes alternate and a slow minute of the machine hits all of
/// them, not one. A cell's speed-up is then the median of its rounds, each round's speed-up
/// taken against that round's own serial run, with the lowest and highest beside it. Pure.
enum Rounds {
    /// A cell's identity across rounds.
    private struct Key: Hashable {
        var workload: LabWorkload
        var mode: LabMode
        var source: LabSource
        var workers: Int
        var inputBytes: Int?
    }

    /// The cells of every round merged, in the first round's order. The first round's timeline
    /// and notes are kept; a cell missing from a round (CPython failed once) counts the rounds
    /// it has.
    static func merge(_ rounds: [[LabCell]]) -> [LabCell] {
        guard let first = rounds.first else { return [] }
        var byKey: [Key: [LabCell]] = [:]
        for round in rounds {
            for cell in round { byKey[key(cell), default: []].append(cell) }
        }
        return first.map { cell in
            let measured = (byKey[key(cell)] ?? [cell]).filter { $0.wallSeconds > 0 && $0.speedup.isFinite && $0.speedup > 0 }
            var merged = cell
            guard !measured.isEmpty else { return merged }
            let speedups = measured.map(\.speedup)
            merged.speedup = median(speedups)
            merged.speedupMin = speedups.min()
            merged.speedupMax = speedups.max()
            merged.rounds = measured.count
            merged.roundSpeedups = speedups
            merged.wallSeconds = median(measured.map(\.wallSeconds))
            merged.cpuPerWall = median(measured.map(\.cpuPerWall))
            let probes = measured.compactMap(\.probeMedianMs)
            if !probes.isEmpty { merged.probeMedianMs = median(probes) }
            let tails = measured.compactMap(\.probeP90Ms)
            if !tails.isEmpty { merged.probeP90Ms = median(tails) }
            return merged
        }
    }

    /// The middle value (the mean of the middle two for an even count).
    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return 0 }
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    private static func key(_ cell: LabCell) -> Key {
        Key(workload: cell.workload, mode: cell.mode, source: cell.source, workers: cell.workers, inputBytes: cell.inputBytes)
    }
}
