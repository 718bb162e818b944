/// The course's claims, one a workload, each with the verdict this run's cells give it: the
/// claim is a sentence of the course, the verdict is computed, never written in advance.
public struct LabVerdict: Codable, Sendable, Equatable {
    /// What the numbers say of the claim.
    public enum Outcome: String, Codable, Sendable {
        /// The cells bear it out.
        case confirmed
        /// The cells say otherwise, settled as they are (``because`` says which and how).
        case contradicted
        /// A cell it rests on is unsettled, or the machine cannot show it (one CPU): no lesson.
        case unsettled
    }

    /// The workload whose section it closes.
    public var workload: LabWorkload
    /// The course's sentence.
    public var claim: String
    /// What the cells say.
    public var outcome: Outcome
    /// The numbers it rests on; for a contradicted or unsettled claim, why.
    public var because: String

    /// A verdict on `claim` for `workload`.
    public init(workload: LabWorkload, claim: String, outcome: Outcome, because: String) {
        self.workload = workload
        self.claim = claim
        self.outcome = outcome
        self.because = because
    }
}

/// Every bar a result is held to, in one place: the conclusions, the verdicts and the settling
/// rules read them here (and `scripts/check-lab.sh` checks the verdicts, not numbers of its own).
enum LabThresholds {
    /// A mode that runs one task at a time (under a GIL) is 1×, give or take this.
    static let gilTolerance = 0.15
    /// A speed-up above its physical bound by more than this factor is a disturbed run.
    static let boundTolerance = 1.15
    /// Rounds of one cell more than this factor apart (after the farthest is left out): unsettled.
    static let spreadTolerance = 1.3
    /// Overlapping waits must give at least this share of the waits that could overlap.
    static let overlapShare = 0.75
    /// Parallel CPU work must give at least this share of its cores (the conclusions' "every core
    /// works").
    static let parallelShare = 0.85
    /// Parallel CPU work runs on several cores when it gains at least this share of each core
    /// beyond the first (1.5× on 2 cores, 2.5× on 4): what the claim needs, with room for a pool's
    /// start-up, which a short run feels.
    static let extraCoreShare = 0.5
    /// The convoy effect: a waiting thread late by this range of switch intervals.
    static let convoyRange = 0.5...2.0
    /// The convoy's curve: behind the most CPU threads a sleeper's slowest tenth is late by at
    /// least this many times what it is behind the fewest.
    static let convoyGrowth = 1.5
    /// The convoy's probe makes at least this many sleeps before its time limit
    /// (``LabReport/Config/convoyCellMs``) may stop it, here and in the CPython peer.
    static let convoyMinimumSleeps = 10
    /// The simulated GIL's convoy agrees with CPython's when their medians are within this ratio
    /// at a width (the lateness comes in whole switch intervals lost, so a factor, not a percentage).
    static let convoyAgreement = 0.5...2.0
    /// CPython and the Swift side agree when their speed-ups are this close.
    static let agreement = 0.15
    /// Threads that scale: above this speed-up on CPU-bound work.
    static let scales = 1.3
    /// A 1 ms sleep beside a CPU-bound process wakes later than this (ms) only on a busy machine.
    static let processProbeMs = 1.0
    /// Other programs keeping this many CPUs busy (on average, over the run) make a failed claim
    /// unsettled rather than contradicted.
    static let busyCPUs = 0.25
}

enum Verdicts {
    static let claims: [LabWorkload: String] = [
        .ioSleep: "Threads are ideal for I/O-bound tasks: while one waits, the others run, so the waits overlap (concurrency, which needs no second core).",
        .ioNet: "The same holds for real I/O: requests to a server overlap on threads, and on one thread with non-blocking sockets.",
        .cpu: "The GIL limits parallel execution in threads: under it CPU-bound threads run one at a time, while processes, each with its own interpreter, use every core (parallelism).",
        .mixed: "Under a GIL, a thread waiting on I/O also waits for a CPU-bound thread to let go of the lock: about one switch interval each time (the convoy effect).",
        .cpuScaling: "CPU-bound work scales with the cores, not with the workers: the speed-up grows up to the CPU count and stops there, and under a GIL threads stay flat at 1×.",
        .ioScaling: "I/O-bound work keeps scaling with the workers past the CPU count, because a wait needs no core, even under a GIL.",
        .convoy: "The convoy grows with the CPU-bound threads: a thread back from I/O queues for the GIL behind every one of them, so the more there are, the longer it waits.",
        .data: "Processes are not free: they pay to start and to move every input and output across a boundary, so for a small batch threads win once the pool's start is counted, and without a GIL to escape processes cannot win at all.",
    ]

    /// The verdict on each workload's claim that this run measured.
    static func judge(_ cells: [LabCell], config: LabReport.Config, machine: LabReport.Machine?) -> [LabVerdict] {
        let table = Conclusions.Table(cells: cells)
        let busy = machine?.busyText ?? "no load figures"
        let x = { (value: Double) in Conclusions.format(value) + "×" }
        var verdicts: [LabVerdict] = []
        func verdict(_ workload: LabWorkload, uses: [LabCell?], _ decide: () -> (Bool, String)) {
            guard let claim = claims[workload], !uses.isEmpty, uses.allSatisfy({ $0 != nil }) else { return }
            let used = uses.compactMap { $0 }
            if case let disturbed = used.filter({ $0.unsettled != nil }), !disturbed.isEmpty {
                let reasons = disturbed.map { "\($0.label) \($0.unsettled!)" }.joined(separator: "; ")
                verdicts.append(LabVerdict(workload: workload, claim: claim, outcome: .unsettled, because: "\(reasons) (\(busy))"))
                return
            }
            let (holds, because) = decide()
            // A claim that failed while other programs kept the CPUs busy failed for them: the run
            // cannot contradict it, only leave it open.
            if !holds, let others = machine?.otherCPUs, others >= LabThresholds.busyCPUs {
                verdicts.append(LabVerdict(workload: workload, claim: claim, outcome: .unsettled,
                                           because: "\(because) — but \(busy), so this run cannot contradict the claim"))
                return
            }
            verdicts.append(LabVerdict(workload: workload, claim: claim, outcome: holds ? .confirmed : .contradicted, because: because))
        }

        for workload in [LabWorkload.ioSleep, .ioNet] {
            let threads = table[workload, .threads], async1 = table[workload, .asyncOneThread]
            verdict(workload, uses: [threads, async1]) {
                let waits = config.ioTasks
                let width = Double(max(1, min(threads!.workers, waits)))
                let threadsOverlap = threads!.speedup >= LabThresholds.overlapShare * width
                let asyncOverlaps = async1!.speedup >= LabThresholds.overlapShare * Double(waits)
                let numbers = "\(threads!.label) \(x(threads!.speedup)) and one thread of async tasks \(x(async1!.speedup)) on \(waits) waits"
                if threadsOverlap && asyncOverlaps { return (true, numbers + ": the waits overlapped") }
                let short = [threadsOverlap ? nil : "\(threads!.label) below \(x(LabThresholds.overlapShare * width))",
                             asyncOverlaps ? nil : "async tasks below \(x(LabThresholds.overlapShare * Double(waits)))"].compactMap { $0 }
                return (false, numbers + ": " + short.joined(separator: ", ") + ", so the waits did not overlap as they can")
            }
        }

        let gil = table[.cpu, .threadsUnderSimulatedGIL], processes = table[.cpu, .processes]
        let cpythonThreads = table[.cpu, .cpython(.threads)], cpythonProcesses = table[.cpu, .cpython(.processes)]
        let cores = max(1, min(processes?.workers ?? config.workers, machine?.cpus ?? config.workers))
        if let claim = claims[.cpu], gil != nil, processes != nil, cores == 1 {
            verdicts.append(LabVerdict(workload: .cpu, claim: claim, outcome: .unsettled,
                                       because: "this machine gave the lab one CPU, and one CPU cannot show parallelism"))
        } else {
            verdict(.cpu, uses: [gil, processes] + [cpythonThreads, cpythonProcesses].filter { $0 != nil }) {
                var failures: [String] = []
                let oneAtATime = [gil!] + [cpythonThreads].compactMap { $0 }
                for cell in oneAtATime where abs(cell.speedup - 1) > LabThresholds.gilTolerance {
                    failures.append("\(cell.label) ran \(x(cell.speedup)), not about 1×")
                }
                let parallel = [processes!] + [cpythonProcesses].compactMap { $0 }
                let several = 1 + LabThresholds.extraCoreShare * Double(cores - 1)
                // Parallelism is cores busy at the same moment, which CPU ÷ wall measures. Where
                // two CPUs share one core's execution resources (two threads of one core, common
                // on a VM), processes keep both busy yet each runs slower, and an interpreter's
                // loop feels it more than a tight arithmetic one: still parallel, gaining less.
                var slower: [String] = []
                for cell in parallel where cell.speedup < several {
                    if cell.cpuPerWall >= several, cell.speedup >= LabThresholds.scales {
                        slower.append("\(cell.label) kept \(Conclusions.format(cell.cpuPerWall)) CPUs busy at once for \(x(cell.speedup)): each CPU ran slower with the other busy")
                    } else {
                        failures.append("\(cell.label) ran \(x(cell.speedup)) with \(Conclusions.format(cell.cpuPerWall)) CPUs busy, below the \(x(several)) that several of the \(cores) cores give")
                    }
                }
                let numbers = (oneAtATime + parallel).map { "\($0.label) \(x($0.speedup))" }.joined(separator: ", ")
                    + (slower.isEmpty ? "" : "; " + slower.joined(separator: "; "))
                return failures.isEmpty ? (true, numbers) : (false, failures.joined(separator: "; "))
            }
        }

        // The scaling curves: the points each claim rests on.
        let cpus = machine?.cpus ?? config.workers
        func point(_ workload: LabWorkload, _ mode: LabMode, _ width: Int?) -> LabCell? {
            guard let width else { return nil }
            return cells.first { $0.workload == workload && $0.mode == mode && $0.workers == width && $0.wallSeconds > 0 }
        }
        let cpuWidths = config.scalingWidths
        if let claim = claims[.cpuScaling], cells.contains(where: { $0.workload == .cpuScaling }), cpus == 1 {
            verdicts.append(LabVerdict(workload: .cpuScaling, claim: claim, outcome: .unsettled,
                                       because: "this machine gave the lab one CPU, and one CPU cannot show where scaling stops"))
        } else if let atCPUs = point(.cpuScaling, .threads, cpuWidths.last { $0 <= cpus }), let widest = point(.cpuScaling, .threads, cpuWidths.last) {
            // Each point ran once: the claim rests on the curve, not on one point. It reaches the
            // cores when its best point from the CPU count on does; past the CPU count no point can
            // exceed the cores (settling marks one that does); under the GIL every point stays flat.
            let fromCPUs = cpuWidths.filter { $0 >= atCPUs.workers }.compactMap { point(.cpuScaling, .threads, $0) }
            let gilPoints = cpuWidths.compactMap { point(.cpuScaling, .threadsUnderSimulatedGIL, $0) }
            verdict(.cpuScaling, uses: fromCPUs + gilPoints) {
                let cores = max(1, min(atCPUs.workers, cpus))
                let several = 1 + LabThresholds.extraCoreShare * Double(cores - 1)
                let best = fromCPUs.max { $0.speedup < $1.speedup } ?? atCPUs
                var failures: [String] = []
                if best.speedup < several {
                    failures.append("Swift threads reached at most \(x(best.speedup)) (\(best.workers) workers), below the \(x(several)) that \(cores) cores give")
                }
                if let flattest = gilPoints.max(by: { $0.speedup < $1.speedup }), flattest.speedup > 1 + LabThresholds.gilTolerance {
                    failures.append("\(flattest.label) ran \(x(flattest.speedup)), not about 1×")
                }
                let gilRange = gilPoints.isEmpty ? "" : ", under the simulated GIL \(x(gilPoints.map(\.speedup).min()!))–\(x(gilPoints.map(\.speedup).max()!)) at every width"
                let numbers = "Swift threads \(x(atCPUs.speedup)) at \(atCPUs.workers) and \(x(widest.speedup)) at \(widest.workers) workers on \(cpus) CPUs, "
                    + "never more than the \(cpus) cores" + gilRange
                return failures.isEmpty ? (true, numbers) : (false, failures.joined(separator: "; "))
            }
        }
        let ioWidest = config.ioScalingWidths.last
        if let threads = point(.ioScaling, .threads, ioWidest), let gil = point(.ioScaling, .threadsUnderSimulatedGIL, ioWidest) {
            let python = point(.ioScaling, .cpython(.threads), ioWidest)
            verdict(.ioScaling, uses: [threads, gil] + (python.map { [$0] } ?? [])) {
                let ideal = ScalingCurve.ideal(workload: .ioScaling, width: threads.workers, cpus: cpus, config: config)
                let enough = LabThresholds.overlapShare * ideal
                let used = [threads, gil] + (python.map { [$0] } ?? [])
                let short = used.filter { $0.speedup < enough }
                let numbers = used.map { "\($0.label) \(x($0.speedup))" }.joined(separator: ", ") + " with \(threads.workers) workers on \(cpus) CPUs"
                if threads.workers <= cpus { return (false, numbers + ": the curve never went past the CPU count, so it cannot show this") }
                return short.isEmpty ? (true, numbers)
                    : (false, numbers + ": " + short.map { "\($0.label) below \(x(enough))" }.joined(separator: ", "))
            }
        }

        // When processes lose: the smallest size in every source, and every size in Swift.
        let dataCells = cells.filter { $0.workload == .data && $0.inputBytes != nil && $0.wallSeconds > 0 }
        if let smallest = dataCells.compactMap(\.inputBytes).min() {
            let pairs: [(threads: LabCell, processes: LabCell)] = [LabSource.swift, .cpython].compactMap { source in
                let at = dataCells.filter { $0.source == source && $0.inputBytes == smallest }
                guard let threads = at.first(where: { $0.mode.kind == .threads }),
                      let processes = at.first(where: { $0.mode.kind == .processes }) else { return nil }
                return (threads, processes)
            }
            let swiftSizes = dataCells.filter { $0.source == .swift && [.threads, .processes].contains($0.mode) }
            verdict(.data, uses: pairs.flatMap { [$0.threads, $0.processes] } + swiftSizes) {
                var failures: [String] = []
                // A small batch on a pool started for it: its start-up (timed apart) and the batch.
                func startup(_ source: LabSource) -> Double {
                    cells.first { $0.workload == .data && $0.source == source && $0.mode.kind == .poolStart }?.wallSeconds ?? 0
                }
                for pair in pairs where pair.processes.wallSeconds + startup(pair.processes.source) < pair.threads.wallSeconds {
                    failures.append("at \(LabFormat.bytes(smallest)) a task \(pair.processes.label) took \(LabFormat.duration(pair.processes.wallSeconds)) and \(LabFormat.duration(startup(pair.processes.source))) to start, less than \(pair.threads.label)'s \(LabFormat.duration(pair.threads.wallSeconds))")
                }
                let sizes = Array(Set(swiftSizes.compactMap(\.inputBytes))).sorted()
                for size in sizes {
                    guard let threads = swiftSizes.first(where: { $0.mode == .threads && $0.inputBytes == size }),
                          let processes = swiftSizes.first(where: { $0.mode == .processes && $0.inputBytes == size }) else { continue }
                    // Processes beating threads by more than noise would mean the threads were held back.
                    if processes.wallSeconds * LabThresholds.boundTolerance < threads.wallSeconds {
                        failures.append("at \(LabFormat.bytes(size)) a task Swift's processes (\(LabFormat.duration(processes.wallSeconds))) beat its threads (\(LabFormat.duration(threads.wallSeconds)))")
                    }
                }
                let numbers = pairs.map { "at \(LabFormat.bytes(smallest)) a task \($0.threads.label) \(LabFormat.duration($0.threads.wallSeconds)) vs \($0.processes.label) \(LabFormat.duration($0.processes.wallSeconds)) after \(LabFormat.duration(startup($0.processes.source))) to start" }
                    .joined(separator: "; ") + (sizes.isEmpty ? "" : "; Swift's threads at least as fast as its processes at every size up to \(LabFormat.bytes(sizes.last!))")
                return failures.isEmpty ? (true, numbers) : (false, failures.joined(separator: "; "))
            }
        }

        let convoy = table[.mixed, .threadsUnderSimulatedGIL]
        if convoy?.probeMedianMs != nil {
            verdict(.mixed, uses: [convoy]) {
                let late = convoy!.probeMedianMs!
                let ratio = late / config.switchIntervalMs
                let free = table[.mixed, .threads]?.probeMedianMs
                var because = "a 1 ms sleep woke \(Conclusions.format(late)) ms late behind a CPU thread under the GIL "
                    + "(\(Conclusions.format(ratio))× the \(Conclusions.format(config.switchIntervalMs)) ms switch interval)"
                if let free { because += ", \(Conclusions.format(free)) ms with no GIL" }
                let holds = LabThresholds.convoyRange.contains(ratio) && (free.map { $0 < late / 2 } ?? true)
                return (holds, holds ? because : because + ": not the one switch interval the claim says")
            }
        }
        // Behind one CPU thread, the curve's first point is the mixed workload's cell.
        let convoyCells = cells.filter { ($0.workload == .convoy || $0.workload == .mixed) && $0.wallSeconds > 0 && $0.probeMedianMs != nil }
        if cells.contains(where: { $0.workload == .convoy }), let decided = ConvoyCurve.decide(convoyCells) {
            let drawn = Set(ConvoyCurve.curves(convoyCells).map(\.mode))
            verdict(.convoy, uses: convoyCells.filter { drawn.contains($0.mode) }) { decided }
        }
        return verdicts
    }
}
