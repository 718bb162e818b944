/// The lab's acceptance targets on this machine, computed from ``LabThresholds`` and the run's
/// sizes, and written into `--json` (`targets`), so `scripts/check-lab.sh` checks the numbers
/// the conclusions and verdicts use instead of keeping its own.
public struct LabTarget: Codable, Sendable, Equatable {
    /// What it checks, as the check's line names it.
    public var name: String
    /// The cell: its workload, mode and (for a curve's point) workers.
    public var workload: LabWorkload
    public var mode: LabMode
    public var workers: Int?
    /// The cell's value checked: `speedup` or `probe_median_ms`.
    public var value: String
    /// With another mode: the ratio of the cell's value to that mode's (same workload and
    /// workers), which must lie within `atLeast…atMost`.
    public var relativeTo: LabMode?
    /// The bounds, either or both.
    public var atLeast: Double?
    public var atMost: Double?

    enum CodingKeys: String, CodingKey {
        case name, workload, mode, workers, value
        case relativeTo = "relative_to"
        case atLeast = "at_least"
        case atMost = "at_most"
    }

    /// The targets of a run with `config` on `cpus` CPUs, for the workloads it measured.
    static func targets(config: LabReport.Config, cpus: Int, workloads: [LabWorkload], python: Bool) -> [LabTarget] {
        let cores = Double(max(1, min(config.workers, cpus)))
        let overlap = LabThresholds.overlapShare * Double(config.ioTasks)
        let gil = (1 - LabThresholds.gilTolerance, 1 + LabThresholds.gilTolerance)
        let agreement = (1 - LabThresholds.agreement, 1 + LabThresholds.agreement)
        var targets: [LabTarget] = []
        func add(_ name: String, _ workload: LabWorkload, _ mode: LabMode, workers: Int? = nil, value: String = "speedup",
                 relativeTo: LabMode? = nil, atLeast: Double? = nil, atMost: Double? = nil) {
            guard workloads.contains(workload) else { return }
            targets.append(LabTarget(name: name, workload: workload, mode: mode, workers: workers, value: value,
                                     relativeTo: relativeTo, atLeast: atLeast, atMost: atMost))
        }
        add("io-sleep (\(config.ioTasks) tasks): Swift threads overlap the waits", .ioSleep, .threads, atLeast: overlap)
        add("io-sleep (\(config.ioTasks) tasks): async tasks on one thread overlap them too", .ioSleep, .asyncOneThread, atLeast: overlap)
        add("cpu: Swift threads use the cores", .cpu, .threads, atLeast: LabThresholds.parallelShare * cores)
        add("cpu: threads under the simulated GIL run one at a time", .cpu, .threadsUnderSimulatedGIL, atLeast: gil.0, atMost: gil.1)
        add("cpu: Swift processes use the cores", .cpu, .processes, atLeast: LabThresholds.parallelShare * cores)
        add("cpu: async tasks on one thread gain nothing", .cpu, .asyncOneThread, atMost: gil.1)
        add("mixed: the convoy, a 1 ms sleep late by about one switch interval (\(Conclusions.format(config.switchIntervalMs)) ms)", .mixed,
            .threadsUnderSimulatedGIL, value: "probe_median_ms",
            atLeast: LabThresholds.convoyRange.lowerBound * config.switchIntervalMs, atMost: LabThresholds.convoyRange.upperBound * config.switchIntervalMs)
        add("mixed: a sleep beside a CPU process is barely late", .mixed, .processes, value: "probe_median_ms", atMost: LabThresholds.processProbeMs)
        guard python else { return targets }
        add("io-sleep: CPython threads agree with Swift's", .ioSleep, .cpython(.threads), relativeTo: .threads, atLeast: agreement.0, atMost: agreement.1)
        add("cpu: CPython threads agree with the simulated GIL", .cpu, .cpython(.threads), relativeTo: .threadsUnderSimulatedGIL,
            atLeast: agreement.0, atMost: agreement.1)
        add("cpu: CPython processes agree with Swift's", .cpu, .cpython(.processes), relativeTo: .processes, atLeast: agreement.0, atMost: agreement.1)
        for width in config.scalingWidths {
            add("cpu-scaling at \(width) workers: CPython threads agree with the simulated GIL", .cpuScaling, .cpython(.threads), workers: width,
                relativeTo: .threadsUnderSimulatedGIL, atLeast: agreement.0, atMost: agreement.1)
        }
        add("convoy behind 1 CPU thread: CPython's lateness within 2× of the simulated GIL's", .mixed, .cpython(.threads), value: "probe_median_ms",
            relativeTo: .threadsUnderSimulatedGIL, atLeast: LabThresholds.convoyAgreement.lowerBound, atMost: LabThresholds.convoyAgreement.upperBound)
        for width in config.widths(.convoy) {
            add("convoy behind \(width) CPU thread\(width == 1 ? "" : "s"): CPython's lateness within 2× of the simulated GIL's", .convoy, .cpython(.threads), workers: width,
                value: "probe_median_ms", relativeTo: .threadsUnderSimulatedGIL,
                atLeast: LabThresholds.convoyAgreement.lowerBound, atMost: LabThresholds.convoyAgreement.upperBound)
        }
        return targets
    }
}
