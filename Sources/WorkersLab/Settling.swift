#if canImport(Glibc)
import Glibc
#endif
import Foundation
import WorkersCore

/// Which cells a lesson may be drawn from. A cell whose speed-up breaks a physical bound — more
/// than its workers (or the CPUs) can give, or above 1 for a mode that runs one task at a time —
/// did not measure its mode: the machine disturbed the run (most often the serial run it is
/// divided by). Such a cell is *unsettled*: the tables mark it, and the conclusions draw no
/// verdict from it.
///
/// Pure: it sees only the cells, the sizes and the CPU count.
enum Settling {
    /// How far above a bound a measured speed-up may go before it is called a disturbance, not a
    /// result: timer and scheduling noise on a quiet machine stays well inside it.
    static let tolerance = LabThresholds.boundTolerance

    /// How far apart a cell's rounds may be (highest ÷ lowest speed-up) before the cell is called
    /// unsteady: then the machine, not the mode, decided its number. With three rounds or more,
    /// the one farthest from the median is left out first: one disturbed round is outvoted by
    /// the others (the median already ignores it); two that disagree are not.
    static let spreadTolerance = LabThresholds.spreadTolerance

    /// The rounds that must agree: all, less the one farthest from their median when there are
    /// three or more.
    static func agreeing(_ speedups: [Double]) -> [Double] {
        guard speedups.count >= 3 else { return speedups }
        let middle = Rounds.median(speedups)
        let farthest = speedups.indices.max { abs(log(speedups[$0] / middle)) < abs(log(speedups[$1] / middle)) }!
        var rest = speedups
        rest.remove(at: farthest)
        return rest
    }

    /// The most `cell` can gain over serial on a machine of `cpus` CPUs, or `nil` where no bound
    /// applies (the mixed and convoy workloads, whose cells time a probe).
    static func bound(of cell: LabCell, config: LabReport.Config, cpus: Int) -> Double? {
        switch cell.workload {
        case .mixed, .convoy:
            return nil
        case .data:
            // Its lessons compare wall times (threads against processes at one size, each the
            // median of its repeats), never a speed-up over serial; and at a few KiB a task the
            // times are a thread's wake-up, not work, so no core count bounds them.
            return nil
        case .cpu, .cpuScaling:
            if cell.mode.runsOneTaskAtATimeOnCPU { return 1 }
            return Double(max(1, min(cell.workers, cpus)))
        case .ioScaling:
            return Double(max(1, min(cell.workers, config.ioScalingTasks)))
        case .ioSleep, .ioNet:
            // Waits overlap without CPUs: one thread with non-blocking calls overlaps them all.
            let overlapping = cell.mode.kind == .oneThreadAsync ? config.ioTasks : cell.workers
            return Double(max(1, min(overlapping, config.ioTasks)))
        }
    }

    /// `cells` with ``LabCell/unsettled`` set where a speed-up breaks its bound, or its rounds
    /// are too far apart.
    static func judge(_ cells: [LabCell], config: LabReport.Config, cpus: Int) -> [LabCell] {
        cells.map { cell in
            var cell = cell
            guard cell.wallSeconds > 0, cell.speedup.isFinite, cell.speedup > 0 else { return cell }
            if let bound = bound(of: cell, config: config, cpus: cpus), cell.speedup > bound * tolerance {
                let most = Conclusions.format(bound) + "×"
                cell.unsettled = bound == 1
                    ? "\(Conclusions.format(cell.speedup))× for a mode that runs one task at a time (at most \(most)): the run it is compared with was slowed"
                    : "\(Conclusions.format(cell.speedup))× from \(Int(bound)) at a time (at most \(most)): the run it is compared with was slowed"
            } else if let speedups = cell.roundSpeedups, speedups.allSatisfy({ $0 > 0 }),
                      case let agreeing = agreeing(speedups), let low = agreeing.min(), let high = agreeing.max(), high / low > spreadTolerance {
                let rounds = speedups.map { Conclusions.format($0) + "×" }.joined(separator: ", ")
                cell.unsettled = "its rounds gave \(rounds): the machine was not steady enough to tell"
            }
            return cell
        }
    }
}

/// How busy the machine was while the lab ran: what the conclusions name when a cell is
/// unsettled.
struct MachineLoad {
    /// `/proc/stat`'s CPU counters (in clock ticks) at one moment, with this process's own CPU
    /// seconds and the monotonic clock.
    struct Sample {
        var steal: Double
        var total: Double
        /// Ticks not idle and not waiting for I/O: every program's work, ours included.
        var busy: Double = 0
        var ownSeconds: Double = 0
        var at: Double = 0
    }

    /// The counters now, or `nil` where `/proc/stat` cannot be read.
    static func sample() -> Sample? {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") }) else { return nil }
        let fields = line.split(separator: " ").dropFirst().compactMap { Double($0) }
        guard fields.count >= 8 else { return nil }
        // user nice system idle iowait irq softirq steal [guest guest_nice: already in user]
        let total = fields[0..<8].reduce(0, +)
        return Sample(steal: fields[7], total: total, busy: total - fields[3] - fields[4], ownSeconds: cpuSeconds(), at: monotonicSeconds())
    }

    /// How many CPUs other programs kept busy, on average, between two samples: all the busy
    /// time less this process's (and its children's), over the wall time.
    static func otherCPUs(from start: Sample?, to end: Sample?) -> Double? {
        guard let start, let end, end.at > start.at else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        guard ticks > 0 else { return nil }
        let others = (end.busy - start.busy) / ticks - (end.ownSeconds - start.ownSeconds)
        return max(0, others / (end.at - start.at))
    }

    /// The share of CPU time the hypervisor took between two samples, in percent.
    static func stealPercent(from start: Sample?, to end: Sample?) -> Double? {
        guard let start, let end, end.total > start.total else { return nil }
        return (end.steal - start.steal) / (end.total - start.total) * 100
    }

    /// The 1-minute load average, or `nil`.
    static func loadAverage() -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return nil }
        return text.split(separator: " ").first.flatMap { Double($0) }
    }
}
