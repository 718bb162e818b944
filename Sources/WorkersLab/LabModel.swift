/// What the lab measures, as data: the rows of its tables, the spans of its timelines, and the
/// conclusions drawn from them. The same shape comes from the Swift side and from the CPython
/// peer (`source`), so one renderer draws both.

/// A workload the lab runs in every mode.
public enum LabWorkload: String, Codable, Sendable, CaseIterable {
    /// Tasks that wait (sleep): I/O-bound.
    case ioSleep = "io-sleep"
    /// Requests to a loopback server the lab starts, which answers after a set latency: real I/O.
    case ioNet = "io-net"
    /// A deterministic CPU kernel whose checksum is printed: CPU-bound.
    case cpu
    /// A probe measuring how late a 1 ms sleep wakes while CPU-bound work runs.
    case mixed
    /// The scaling curve of CPU-bound work: the same kernel tasks at 1, 2, 4, … workers (up to
    /// four times the CPUs), on threads, threads under the simulated GIL and processes.
    case cpuScaling = "cpu-scaling"
    /// The scaling curve of I/O-bound work: the same sleeps at 1, 2, 4, … workers.
    case ioScaling = "io-scaling"
    /// Inputs of growing size with a small, fixed amount of work per byte, on threads and on
    /// processes: where moving the data to other processes costs more than it gains.
    case data
    /// The mixed probe behind 2, 4, … CPU threads (the CPU curve's widths; behind one is the
    /// mixed workload): how the convoy grows with the threads that queue for the lock ahead of
    /// a returning I/O thread.
    case convoy

    /// The heading a person reads.
    public var title: String {
        switch self {
        case .ioSleep: "I/O-bound: tasks that sleep"
        case .ioNet: "I/O-bound: requests to a loopback server"
        case .cpu: "CPU-bound: a deterministic kernel"
        case .mixed: "Mixed: I/O latency while CPU work runs"
        case .cpuScaling: "CPU-bound: speed-up by workers (the scaling curve)"
        case .ioScaling: "I/O-bound: speed-up by workers (the scaling curve)"
        case .data: "Data-heavy: when processes lose"
        case .convoy: "Mixed: the convoy behind more CPU threads"
        }
    }

    /// Whether its cells are the points of a scaling curve (one per mode and width).
    public var isScaling: Bool { self == .cpuScaling || self == .ioScaling }

    /// Whether it runs once, in the lab's first round, instead of in every round: the curves
    /// (scaling, and the data-heavy sizes), whose points repeat within the one run if at all.
    /// The HTML report draws these first.
    public var runsOnce: Bool { isScaling || self == .data || self == .convoy }
}

/// Where a cell was measured.
public enum LabSource: String, Codable, Sendable {
    case swift
    /// CPython with its GIL (every release before 3.13, and the default build since).
    case cpython
    /// A free-threaded CPython (PEP 703: `python3.13t`, `python3.14t`) running without the GIL.
    case cpythonFreeThreaded = "cpython-ft"

    /// The source as a sentence names it.
    public var name: String {
        switch self {
        case .swift: "Swift"
        case .cpython: "CPython"
        case .cpythonFreeThreaded: "CPython without the GIL"
        }
    }
}

/// How a cell ran its work. Its ``rawValue`` is the stable id in `--json` and the CPython peer's
/// output: `serial`, `async-1`, `threads`, `threads-gil`, `processes`, `pool-start` for Swift;
/// `cpython-serial`, `cpython-threads`, `cpython-processes`, `cpython-asyncio`,
/// `cpython-pool-start` for CPython, and the same with `cpython-ft-` for a free-threaded one.
public enum LabMode: Hashable, Sendable, CustomStringConvertible {
    /// What a CPython mode does, with or without its GIL.
    public enum Python: String, Hashable, Sendable, CaseIterable {
        /// One task after another in the main thread.
        case serial
        /// `ThreadPoolExecutor` threads.
        case threads
        /// A `multiprocessing.Pool`.
        case processes
        /// Coroutines on one thread (`asyncio`).
        case asyncio
        /// Starting a `multiprocessing.Pool` (the data-heavy workload times it apart).
        case poolStart = "pool-start"
    }

    /// One task after another on one thread.
    case serial
    /// Async tasks on one thread (a `ThreadPool` of one as their executor).
    case asyncOneThread
    /// A `ThreadPool`.
    case threads
    /// A `ThreadPool` whose threads take turns under the simulated GIL.
    case threadsUnderSimulatedGIL
    /// A `ProcessPool`.
    case processes
    /// Starting a `ProcessPool` (the data-heavy workload times it apart).
    case poolStart
    /// CPython with its GIL.
    case cpython(Python)
    /// A free-threaded CPython, without the GIL.
    case cpythonFreeThreaded(Python)

    /// What every mode is, whatever ran it.
    public enum Kind: Hashable, Sendable {
        case serial, oneThreadAsync, threads, threadsUnderSimulatedGIL, processes, poolStart
    }

    /// What the mode is, whatever ran it: CPython's threads are `.threads` (its GIL is the
    /// source's, not the mode's).
    public var kind: Kind {
        switch self {
        case .serial, .cpython(.serial), .cpythonFreeThreaded(.serial): .serial
        case .asyncOneThread, .cpython(.asyncio), .cpythonFreeThreaded(.asyncio): .oneThreadAsync
        case .threads, .cpython(.threads), .cpythonFreeThreaded(.threads): .threads
        case .threadsUnderSimulatedGIL: .threadsUnderSimulatedGIL
        case .processes, .cpython(.processes), .cpythonFreeThreaded(.processes): .processes
        case .poolStart, .cpython(.poolStart), .cpythonFreeThreaded(.poolStart): .poolStart
        }
    }

    /// Whether it runs one task at a time on CPU-bound work, whatever its workers: one thread, or
    /// threads under a GIL, simulated or CPython's. A free-threaded CPython's threads run at once.
    public var runsOneTaskAtATimeOnCPU: Bool {
        switch self {
        case .serial, .asyncOneThread, .threadsUnderSimulatedGIL, .cpython(.serial), .cpython(.threads), .cpython(.asyncio),
             .cpythonFreeThreaded(.serial), .cpythonFreeThreaded(.asyncio):
            true
        default:
            false
        }
    }

    /// The same mode in a free-threaded CPython (a CPython mode's; others are unchanged).
    public var freeThreaded: LabMode {
        if case .cpython(let python) = self { return .cpythonFreeThreaded(python) }
        return self
    }

    /// The stable id (see the type's description).
    public var rawValue: String {
        switch self {
        case .serial: "serial"
        case .asyncOneThread: "async-1"
        case .threads: "threads"
        case .threadsUnderSimulatedGIL: "threads-gil"
        case .processes: "processes"
        case .poolStart: "pool-start"
        case .cpython(let python): "cpython-" + python.rawValue
        case .cpythonFreeThreaded(let python): "cpython-ft-" + python.rawValue
        }
    }

    /// The mode of a stable id, or `nil` for an id no mode has.
    public init?(rawValue: String) {
        if rawValue.hasPrefix("cpython-ft-") {
            guard let python = Python(rawValue: String(rawValue.dropFirst("cpython-ft-".count))) else { return nil }
            self = .cpythonFreeThreaded(python)
        } else if rawValue.hasPrefix("cpython-") {
            guard let python = Python(rawValue: String(rawValue.dropFirst("cpython-".count))) else { return nil }
            self = .cpython(python)
        } else if let mode = [LabMode.serial, .asyncOneThread, .threads, .threadsUnderSimulatedGIL, .processes, .poolStart].first(where: { $0.rawValue == rawValue }) {
            self = mode
        } else {
            return nil
        }
    }

    public var description: String { rawValue }
}

extension LabMode: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let id = try container.decode(String.self)
        guard let mode = LabMode(rawValue: id) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "no lab mode is called '\(id)'")
        }
        self = mode
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

/// What a lane of a timeline was doing during a span.
public enum LabSpanState: String, Codable, Sendable {
    /// Computing (and, under a GIL, holding it).
    case running
    /// Blocked on I/O or a sleep (a GIL is released meanwhile).
    case waiting
    /// Ready to compute but waiting for the GIL.
    case gilWait = "gil-wait"
}

/// One interval on one lane of a timeline.
public struct LabSpan: Codable, Sendable, Hashable {
    /// The worker (thread, process or the single thread) that ran it, from 0.
    public var lane: Int
    /// The task it belonged to, from 0; -1 for the probe of the mixed workload.
    public var task: Int
    /// Seconds from the start of the cell.
    public var start: Double
    /// Seconds from the start of the cell.
    public var end: Double
    /// What the lane was doing.
    public var state: LabSpanState

    /// A span of `state` on `lane` for `task`, from `start` to `end` seconds.
    public init(lane: Int, task: Int, start: Double, end: Double, state: LabSpanState) {
        self.lane = lane
        self.task = task
        self.start = start
        self.end = end
        self.state = state
    }
}

/// One measured workload × mode.
public struct LabCell: Codable, Sendable {
    /// The workload.
    public var workload: LabWorkload
    /// How it ran (its stable id in `--json`: `threads-gil`, `cpython-processes`, …).
    public var mode: LabMode
    /// The mode as a person reads it ("ThreadPool(8)").
    public var label: String
    /// Workers (threads or processes) it used.
    public var workers: Int
    /// Wall time in seconds.
    public var wallSeconds: Double
    /// Serial wall time of the same source and workload ÷ this wall time.
    public var speedup: Double
    /// CPU time (user + system, all threads and children) ÷ wall time.
    public var cpuPerWall: Double
    /// The kernel's checksum, for CPU work; `nil` elsewhere.
    public var checksum: String?
    /// Where it was measured.
    public var source: LabSource
    /// For the mixed workload: the probe's median lateness in milliseconds.
    public var probeMedianMs: Double?
    /// For the mixed workload: the probe's 90th-percentile lateness in milliseconds.
    public var probeP90Ms: Double?
    /// The timeline, when recorded.
    public var spans: [LabSpan]?
    /// Why a cell has no numbers ("python3 not found"), or a remark.
    public var note: String?
    /// Why its speed-up cannot be a result (it breaks a physical bound: the machine disturbed
    /// the run), or `nil` when it is settled. No conclusion is drawn from an unsettled cell.
    public var unsettled: String?
    /// The lowest and highest speed-up of its rounds (``speedup`` is their median), and how many
    /// rounds measured it; `nil` for a single round.
    public var speedupMin: Double?
    public var speedupMax: Double?
    public var rounds: Int?
    /// Each round's speed-up, in the order the rounds ran.
    public var roundSpeedups: [Double]?
    /// For the data-heavy workload: the bytes of each task's input (and output).
    public var inputBytes: Int?

    enum CodingKeys: String, CodingKey {
        case workload, mode, label, workers
        case wallSeconds = "wall_s"
        case speedup
        case cpuPerWall = "cpu_per_wall"
        case checksum, source
        case probeMedianMs = "probe_median_ms"
        case probeP90Ms = "probe_p90_ms"
        case spans, note, unsettled
        case speedupMin = "speedup_min"
        case speedupMax = "speedup_max"
        case rounds
        case roundSpeedups = "speedup_rounds"
        case inputBytes = "input_bytes"
    }

    /// A cell with every measured value.
    public init(
        workload: LabWorkload, mode: LabMode, label: String, workers: Int, wallSeconds: Double,
        speedup: Double, cpuPerWall: Double, checksum: String? = nil, source: LabSource,
        probeMedianMs: Double? = nil, probeP90Ms: Double? = nil, spans: [LabSpan]? = nil, note: String? = nil
    ) {
        self.workload = workload
        self.mode = mode
        self.label = label
        self.workers = workers
        self.wallSeconds = wallSeconds
        self.speedup = speedup
        self.cpuPerWall = cpuPerWall
        self.checksum = checksum
        self.source = source
        self.probeMedianMs = probeMedianMs
        self.probeP90Ms = probeP90Ms
        self.spans = spans
        self.note = note
    }
}

/// Everything one run of the lab measured.
public struct LabReport: Codable, Sendable {
    /// The machine it ran on.
    public struct Machine: Codable, Sendable {
        /// CPUs this process may use (``cpuCount``).
        public var cpus: Int
        /// The kernel, from uname.
        public var os: String
        /// `python3 --version`, or `nil` when python3 was not found.
        public var python: String?
        /// The 1-minute load average when the run ended, where the system reports one.
        public var loadAverage: Double?
        /// The share of CPU time the hypervisor took from this machine during the run, in percent.
        public var stealPercent: Double?
        /// How many CPUs other programs kept busy during the run, on average.
        public var otherCPUs: Double?
        /// The free-threaded CPython whose rows are in the report ("3.14.0 at /usr/bin/python3.14t"),
        /// or `nil` when none was found.
        public var freeThreadedPython: String?
        /// The interpreters looked at for a free-threaded CPython, with what each turned out to be;
        /// `nil` when CPython was not run.
        public var freeThreadedLookedFor: [String]?

        enum CodingKeys: String, CodingKey {
            case cpus, os, python
            case loadAverage = "load_average"
            case stealPercent = "steal_percent"
            case otherCPUs = "other_cpus"
            case freeThreadedPython = "free_threaded_python"
            case freeThreadedLookedFor = "free_threaded_looked_for"
        }

        /// The machine as measured.
        public init(cpus: Int, os: String, python: String?, loadAverage: Double? = nil, stealPercent: Double? = nil, otherCPUs: Double? = nil) {
            self.cpus = cpus
            self.os = os
            self.python = python
            self.loadAverage = loadAverage
            self.stealPercent = stealPercent
            self.otherCPUs = otherCPUs
        }

        /// How busy it was, as the conclusions say it ("other programs kept 1.9 of 2 CPUs busy,
        /// load average 3.1, CPU steal 12 %").
        var busyText: String {
            var parts: [String] = []
            if let otherCPUs { parts.append("other programs kept \(Conclusions.format(otherCPUs)) of \(cpus) CPUs busy") }
            if let loadAverage { parts.append("load average \(Conclusions.format(loadAverage)) on \(cpus) CPUs") }
            if let stealPercent { parts.append("CPU steal \(Conclusions.format(stealPercent)) %") }
            return parts.isEmpty ? "no load figures on this system" : parts.joined(separator: ", ")
        }
    }

    /// The sizes it ran with.
    public struct Config: Codable, Sendable {
        /// Whether `--quick` sizes were used.
        public var quick: Bool
        /// Workers for CPU-bound modes (threads and processes).
        public var workers: Int
        /// I/O tasks (sleeps and requests), and threads in the I/O thread modes.
        public var ioTasks: Int
        /// How long each I/O task sleeps, in milliseconds.
        public var ioSleepMs: Double
        /// The loopback server's latency, in milliseconds.
        public var netLatencyMs: Double
        /// CPU tasks, each calibrated to take `cpuTaskMs` serially.
        public var cpuTasks: Int
        /// How long each CPU task takes serially, in milliseconds.
        public var cpuTaskMs: Double
        /// The simulated GIL's switch interval (CPython's default is 5 ms).
        public var switchIntervalMs: Double
        /// Sleeps of 1 ms the mixed workload's probe makes.
        public var probeCount: Int
        /// Kernel iterations per CPU task in Swift, from calibration.
        public var kernelIterations: Int
        /// Rounds of every mode, interleaved; each cell is the median of its rounds.
        public var rounds: Int
        /// The scaling curve's widths for CPU-bound work (1, 2, 4, … up to 4× the CPUs).
        public var scalingWidths: [Int]
        /// The scaling curve's widths for I/O-bound work (1, 2, 4, … up to its tasks).
        public var ioScalingWidths: [Int]
        /// Kernel tasks at every width of the CPU curve (its widest width, so all can run at once).
        public var scalingTasks: Int
        /// How long each of the CPU curve's tasks takes serially, in milliseconds.
        public var scalingTaskMs: Double
        /// Sleeps at every width of the I/O curve.
        public var ioScalingTasks: Int
        /// How long each of the I/O curve's sleeps lasts, in milliseconds.
        public var ioScalingSleepMs: Double
        /// The data-heavy workload's input sizes, in bytes per task.
        public var dataSizes: [Int]
        /// Tasks at every size of the data-heavy workload.
        public var dataTasks: Int
        /// Its work per byte: every `dataStride`-th byte of an input is read and rewritten.
        public var dataStride: Int
        /// Runs of each mode at each size; each cell is their median.
        public var dataRepeats: Int
        /// The convoy's curve: how long each of its probes may run, in milliseconds, before it
        /// stops short of `probeCount` sleeps (after ``LabThresholds/convoyMinimumSleeps``). Behind several CPU threads a
        /// sleep can wait a hundred ms; `nil` or 0: no limit.
        public var convoyCellMs: Double?

        enum CodingKeys: String, CodingKey {
            case quick, workers
            case ioTasks = "io_tasks"
            case ioSleepMs = "io_sleep_ms"
            case netLatencyMs = "net_latency_ms"
            case cpuTasks = "cpu_tasks"
            case cpuTaskMs = "cpu_task_ms"
            case switchIntervalMs = "switch_interval_ms"
            case probeCount = "probe_count"
            case kernelIterations = "kernel_iterations"
            case rounds
            case scalingWidths = "scaling_widths"
            case ioScalingWidths = "io_scaling_widths"
            case scalingTasks = "scaling_tasks"
            case scalingTaskMs = "scaling_task_ms"
            case ioScalingTasks = "io_scaling_tasks"
            case ioScalingSleepMs = "io_scaling_sleep_ms"
            case dataSizes = "data_sizes"
            case dataTasks = "data_tasks"
            case dataStride = "data_stride"
            case dataRepeats = "data_repeats"
            case convoyCellMs = "convoy_cell_ms"
        }

        /// The sizes a run used.
        public init(
            quick: Bool, workers: Int, ioTasks: Int, ioSleepMs: Double, netLatencyMs: Double, cpuTasks: Int,
            cpuTaskMs: Double, switchIntervalMs: Double, probeCount: Int, kernelIterations: Int = 0, rounds: Int = 1,
            scalingWidths: [Int] = [], ioScalingWidths: [Int] = [], scalingTasks: Int = 0, scalingTaskMs: Double = 0,
            ioScalingTasks: Int = 0, ioScalingSleepMs: Double = 0,
            dataSizes: [Int] = [], dataTasks: Int = 0, dataStride: Int = 16, dataRepeats: Int = 1, convoyCellMs: Double? = nil
        ) {
            self.quick = quick
            self.workers = workers
            self.ioTasks = ioTasks
            self.ioSleepMs = ioSleepMs
            self.netLatencyMs = netLatencyMs
            self.cpuTasks = cpuTasks
            self.cpuTaskMs = cpuTaskMs
            self.switchIntervalMs = switchIntervalMs
            self.probeCount = probeCount
            self.kernelIterations = kernelIterations
            self.rounds = rounds
            self.scalingWidths = scalingWidths
            self.ioScalingWidths = ioScalingWidths
            self.scalingTasks = scalingTasks
            self.scalingTaskMs = scalingTaskMs
            self.ioScalingTasks = ioScalingTasks
            self.ioScalingSleepMs = ioScalingSleepMs
            self.dataSizes = dataSizes
            self.dataTasks = dataTasks
            self.dataStride = dataStride
            self.dataRepeats = dataRepeats
            self.convoyCellMs = convoyCellMs
        }

        /// The widths of `workload`'s scaling curve (none for the other workloads).
        public func widths(_ workload: LabWorkload) -> [Int] {
            switch workload {
            case .cpuScaling: scalingWidths
            // Behind one CPU thread is the mixed workload's probe, measured in every round.
            // Not in `quick`: behind several threads each sleep can cost tens of ms, and the
            // curve needs dozens of them at each width to be worth reading.
            case .convoy: quick ? [] : scalingWidths.filter { $0 > 1 }
            case .ioScaling: ioScalingWidths
            default: []
            }
        }
    }

    /// The machine it ran on.
    public var machine: Machine
    /// The sizes it ran with.
    public var config: Config
    /// Every workload × mode measured, Swift first, then CPython.
    public var cells: [LabCell]
    /// Sentences computed from the cells.
    public var conclusions: [String]
    /// The course's claim for each workload measured, with the verdict the cells give it.
    public var verdicts: [LabVerdict]
    /// The lab's acceptance targets for this run, from ``LabThresholds`` (`scripts/check-lab.sh`
    /// checks the cells against them).
    public var targets: [LabTarget] = []

    /// A report of `cells` measured on `machine` with `config`.
    public init(machine: Machine, config: Config, cells: [LabCell], conclusions: [String], verdicts: [LabVerdict] = []) {
        self.machine = machine
        self.config = config
        self.cells = cells
        self.conclusions = conclusions
        self.verdicts = verdicts
    }
}
