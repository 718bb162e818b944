import Foundation
import WorkersCore
import WorkersProcesses
import WorkersThreads

/// The data-heavy workload: inputs of growing size with a small, fixed amount of work per byte,
/// serially, on threads and on a process pool. Processes pay to start and to move every input and
/// output across a boundary (the wire codec here, pickling in CPython); this is where it shows.

extension SwiftExperiments {
    /// Every size's serial, threads and processes cells (each the median of the configured
    /// repeats, interleaved), after the pool's start-up, timed apart as its own cell.
    func data() async throws -> [LabCell] {
        let tasks = max(1, config.dataTasks)
        let stride = max(1, config.dataStride)
        let workers = config.workers
        progress("data · starting ProcessPool(\(workers))")
        let begin = monotonicSeconds()
        let pool = try await ProcessPool(workers: workers, jobs: LabJobs.all, executable: executable)
        let startup = monotonicSeconds() - begin
        let threads = ThreadPool(threads: workers)
        // Serial runs on a thread of its own, started once: a thread started for each run would
        // put its start in the serial times.
        let alone = ThreadPool(threads: 1)
        var cells = [LabCell(workload: .data, mode: .poolStart, label: "ProcessPool(\(workers)) start-up", workers: workers,
                             wallSeconds: startup, speedup: 0, cpuPerWall: 0, source: .swift,
                             note: "from creating the pool to every worker ready")]
        func shutdown() async {
            await pool.shutdown()
            await threads.shutdown()
            await alone.shutdown()
        }
        do {
            for size in config.dataSizes {
                progress("data · \(LabFormat.bytes(size)) a task")
                let block = (0..<size).map { UInt8(truncatingIfNeeded: ($0 &* 2_654_435_761) >> 24) }
                let blocks = Array(repeating: block, count: tasks)
                var walls: [LabMode: [Double]] = [:]
                var outputs: [LabMode: [[UInt8]]] = [:]
                let order: [LabMode] = [.serial, .threads, .processes]
                for round in 0..<max(1, config.dataRepeats) {
                    // Each repeat starts with another mode, so none is always first after a change of size.
                    let first = round % order.count
                    for mode in Array(order[first...]) + Array(order[..<first]) {
                        let start = monotonicSeconds()
                        switch mode {
                        case .serial: outputs[mode] = try await alone.run { blocks.map { DataJob.transform($0, stride: stride) } }
                        case .threads: outputs[mode] = try await eachOnItsOwnJob(tasks, on: threads) { DataJob.transform(blocks[$0], stride: stride) }
                        default: outputs[mode] = try await pool.map(DataJob.self, blocks.map { DataJob.Input(block: $0, stride: stride) }, chunkSize: 1)
                        }
                        walls[mode, default: []].append(monotonicSeconds() - start)
                    }
                }
                let serial = Rounds.median(walls[.serial] ?? [])
                for (mode, label, width) in [(LabMode.serial, "serial (1 thread)", 1), (.threads, "ThreadPool(\(workers))", workers), (.processes, "ProcessPool(\(workers))", workers)] {
                    let wall = Rounds.median(walls[mode] ?? [])
                    var cell = LabCell(workload: .data, mode: mode, label: label, workers: width, wallSeconds: wall,
                                       speedup: wall > 0 ? serial / wall : 0, cpuPerWall: 0, source: .swift)
                    cell.inputBytes = size
                    if outputs[mode] != outputs[.serial] { cell.note = "outputs differ from serial!" }
                    cells.append(cell)
                }
            }
        } catch {
            await shutdown()
            throw error
        }
        await shutdown()
        return cells
    }
}

/// What the data-heavy cells of one source say: the pool's start-up, where processes start to
/// beat threads, and the costs per MiB behind it. Pure.
struct DataAnalysis: Sendable {
    var source: LabSource
    /// The pool's start-up, in seconds.
    var startup: Double?
    /// Settled cells by mode ("serial", "threads", "processes"), in order of size.
    var serial: [LabCell]
    var threads: [LabCell]
    var processes: [LabCell]
    /// Tasks at each size, for the MiB moved.
    var tasks: Int

    /// One analysis per source that measured the workload, Swift first.
    static func analyse(_ cells: [LabCell], config: LabReport.Config) -> [DataAnalysis] {
        [LabSource.swift, .cpython, .cpythonFreeThreaded].compactMap { source in
            let own = cells.filter { $0.workload == .data && $0.source == source && $0.wallSeconds > 0 }
            guard !own.isEmpty else { return nil }
            func mode(_ kind: LabMode.Kind) -> [LabCell] {
                own.filter { $0.mode.kind == kind && $0.inputBytes != nil && $0.unsettled == nil }
                    .sorted { $0.inputBytes! < $1.inputBytes! }
            }
            return DataAnalysis(source: source, startup: own.first { $0.mode.kind == .poolStart }?.wallSeconds,
                                serial: mode(.serial), threads: mode(.threads), processes: mode(.processes), tasks: max(1, config.dataTasks))
        }
    }

    /// The sizes at which threads and processes were both measured, with which was faster.
    var winners: [(bytes: Int, processesWin: Bool)] {
        threads.compactMap { thread in
            guard let process = processes.first(where: { $0.inputBytes == thread.inputBytes }) else { return nil }
            return (thread.inputBytes!, process.wallSeconds < thread.wallSeconds)
        }
    }

    /// The first size from which processes stay faster, with the size before it; `nil` when they
    /// never do by the largest size.
    var crossing: (below: Int?, from: Int)? {
        let sizes = winners
        guard let last = sizes.last, last.processesWin else { return nil }
        var index = sizes.count - 1
        while index > 0, sizes[index - 1].processesWin { index -= 1 }
        return (index > 0 ? sizes[index - 1].bytes : nil, sizes[index].bytes)
    }

    /// Seconds per MiB moved, from the smallest to the largest size: the slope of a mode's line.
    func perMiB(_ cells: [LabCell]) -> Double? {
        guard let small = cells.first, let large = cells.last, large.inputBytes! > small.inputBytes! else { return nil }
        let mebibytes = Double(tasks * (large.inputBytes! - small.inputBytes!)) / 1_048_576
        return max(0, (large.wallSeconds - small.wallSeconds) / mebibytes)
    }

    /// The work per MiB (the serial slope), what moving a MiB to a worker and back costs (the
    /// processes' slope less their share of the work on `cores` cores), and the work per MiB
    /// above which processes pay off on `cores` cores: m × c ÷ (c − 1), where threads (under a
    /// GIL) pay the whole work and processes its c-th part plus the move.
    func costs(cores: Int) -> (work: Double, move: Double, breakEven: Double?)? {
        guard let work = perMiB(serial), let processed = perMiB(processes) else { return nil }
        let c = Double(max(1, cores))
        let move = max(0, processed - work / c)
        return (work, move, cores > 1 ? move * c / (c - 1) : nil)
    }
}

extension LabFormat {
    /// A size in bytes as a person reads it: "1 KiB", "256 KiB", "4 MiB", "100 B".
    static func bytes(_ count: Int) -> String {
        for (unit, shift) in [("MiB", 20), ("KiB", 10)] where count >= 1 << shift {
            return count % (1 << shift) == 0 ? "\(count >> shift) \(unit)" : fixed(Double(count) / Double(1 << shift), decimals: 1) + " " + unit
        }
        return "\(count) B"
    }
}

extension DataAnalysis {
    /// The conclusion: per source, where threads and processes each won and the pool's
    /// start-up; then the costs per MiB and the break-even work per MiB, all from the run.
    static func conclusion(_ cells: [LabCell], config: LabReport.Config, cpus: Int) -> String? {
        let sides = analyse(cells, config: config)
        let sizes = cells.filter { $0.workload == .data }.compactMap(\.inputBytes)
        guard !sides.isEmpty, let smallest = sizes.min(), let largest = sizes.max() else { return nil }
        let cores = max(1, min(config.workers, cpus))
        let range = "\(LabFormat.bytes(smallest)) to \(LabFormat.bytes(largest))"
        var parts: [String] = []
        for side in sides {
            guard !side.winners.isEmpty else { parts.append("\(side.source.name): no settled sizes"); continue }
            var text: String
            if let crossing = side.crossing {
                text = crossing.below.map { "\(side.source.name): threads were faster up to \(LabFormat.bytes($0)) a task and processes from \(LabFormat.bytes(crossing.from)) (the lines cross between them)" }
                    ?? "\(side.source.name): processes were faster at every size"
            } else {
                text = "\(side.source.name): threads were faster at every size up to \(LabFormat.bytes(side.winners.last!.bytes)) a task"
            }
            if let startup = side.startup { text += ", and its pool took \(LabFormat.duration(startup)) to start" }
            if let costs = side.costs(cores: cores) {
                text += "; its work cost \(LabFormat.duration(costs.work)) per MiB and moving a MiB to a worker and back \(LabFormat.duration(costs.move))"
                if let breakEven = costs.breakEven {
                    text += side.source == .cpython
                        ? ", so on \(cores) cores processes pay off only above about \(LabFormat.duration(breakEven)) of work per MiB moved"
                        : " (threads here run in parallel too, so processes can only add the move)"
                }
            }
            parts.append(text)
        }
        return "Data-heavy (\(config.dataTasks) tasks of \(range), every \(config.dataStride)th byte read and rewritten): " + parts.joined(separator: ". ") + "."
    }
}

extension TerminalReport {
    /// The data-heavy workload as a table: one column per input size, one row per mode (its wall
    /// time, `?` where unsettled), then per source which was faster at each size; the pools'
    /// start-up above it, since the times below leave it out.
    public static func dataChart(_ cells: [LabCell], config: LabReport.Config, heading: Bool = true) -> String {
        let own = cells.filter { $0.workload == .data }
        let sizes = Array(Set(own.compactMap(\.inputBytes))).sorted()
        var lines = heading ? [LabWorkload.data.title, dataSizes(cells, config: config)] : []
        guard !sizes.isEmpty else {
            let notes = own.compactMap(\.note)
            return (lines + ["(no sizes measured)" + (notes.isEmpty ? "" : ": " + notes.joined(separator: "; "))]).joined(separator: "\n") + "\n"
        }
        var rows: [(String, [String])] = []
        var seen: [LabMode] = []
        for cell in own where cell.inputBytes != nil && !seen.contains(cell.mode) {
            seen.append(cell.mode)
            let values = sizes.map { size -> String in
                guard let point = own.first(where: { $0.mode == cell.mode && $0.source == cell.source && $0.inputBytes == size }) else { return "—" }
                return LabFormat.duration(point.wallSeconds) + (point.unsettled == nil ? "" : "?")
            }
            rows.append((cell.label, values))
        }
        for side in DataAnalysis.analyse(cells, config: config) {
            let winners = Dictionary(side.winners.map { ($0.bytes, $0.processesWin) }, uniquingKeysWith: { first, _ in first })
            rows.append(("faster in \(side.source.name)", sizes.map { winners[$0].map { $0 ? "processes" : "threads" } ?? "—" }))
        }
        let nameWidth = max("bytes a task".count, rows.map(\.0.count).max() ?? 0)
        let columnWidth = max(10, rows.flatMap(\.1).map(\.count).max() ?? 0) + 2
        lines.append(LabFormat.pad("bytes a task", to: nameWidth) + sizes.map { LabFormat.pad(LabFormat.bytes($0), to: columnWidth, alignRight: true) }.joined())
        for (name, values) in rows {
            lines.append(LabFormat.pad(name, to: nameWidth) + values.map { LabFormat.pad($0, to: columnWidth, alignRight: true) }.joined())
        }
        for cell in own { if let why = cell.unsettled { lines.append("? unsettled: \(cell.label) at \(LabFormat.bytes(cell.inputBytes ?? 0)) — \(why)") } }
        return lines.joined(separator: "\n") + "\n"
    }
}

extension TerminalReport {
    /// What the data-heavy workload ran, and the pools' start-up (which its times leave out).
    static func dataSizes(_ cells: [LabCell], config: LabReport.Config) -> String {
        let startups = cells.filter { $0.workload == .data && $0.mode.kind == .poolStart && $0.wallSeconds > 0 }
            .map { "\($0.label) \(LabFormat.duration($0.wallSeconds))" }
        return "\(config.dataTasks) tasks at each size, every \(config.dataStride)th byte read and rewritten, each block sent back"
            + (startups.isEmpty ? "" : "; start-up, not in the times below: " + startups.joined(separator: ", "))
    }
}

extension HTMLReport {
    /// The data-heavy workload as an SVG chart: wall time (log) against bytes a task (log), one
    /// line per mode and source, threads solid and processes dashed, hollow points unsettled.
    public static func dataSVG(_ cells: [LabCell], config: LabReport.Config) -> String {
        let own = cells.filter { $0.workload == .data && $0.inputBytes != nil && $0.wallSeconds > 0 && $0.mode.kind != .serial }
        let sizes = Array(Set(own.compactMap(\.inputBytes))).sorted()
        guard let smallest = sizes.first, let largest = sizes.last, let fastest = own.map(\.wallSeconds).min(), let slowest = own.map(\.wallSeconds).max() else {
            return ChartFrame.empty("no sizes measured")
        }
        let frame = ChartFrame(plotWidth: 460, plotHeight: 260, left: 64, legendWidth: 340)
        let xSpan = max(log10(Double(largest)) - log10(Double(smallest)), 1)
        let yLow = floor(log10(fastest)), yHigh = max(ceil(log10(slowest)), yLow + 1)
        func x(_ bytes: Int) -> Double { frame.left + (log10(Double(bytes)) - log10(Double(smallest))) / xSpan * frame.plotWidth }
        func y(_ seconds: Double) -> Double { frame.bottom - (log10(seconds) - yLow) / (yHigh - yLow) * frame.plotHeight }
        var svg = frame.open(label: LabWorkload.data.title)
        for power in stride(from: yLow, through: yHigh, by: 1) {
            let tick = pow(10, power)
            svg += frame.gridLine(at: y(tick), label: LabFormat.duration(tick))
        }
        for size in sizes { svg += frame.xLabel(at: x(size), LabFormat.bytes(size)) }
        svg += frame.xTitle("bytes a task (wall time of all tasks, log scales)")
        let colors: [LabSource: String] = [.swift: "#2563eb", .cpython: "#dc2626", .cpythonFreeThreaded: "#16a34a"]
        var legend = ""
        var drawn: [LabMode] = []
        for cell in own where !drawn.contains(cell.mode) {
            drawn.append(cell.mode)
            let points = own.filter { $0.mode == cell.mode && $0.source == cell.source }.sorted { $0.inputBytes! < $1.inputBytes! }
            let color = colors[cell.source] ?? "#475569"
            let stroke = "stroke-width=\"2\"" + (cell.mode.kind == .processes ? " stroke-dasharray=\"6 4\"" : "")
            svg += frame.curve(points.map { point in
                ChartFrame.Point(x: x(point.inputBytes!), y: y(point.wallSeconds), hollow: point.unsettled != nil,
                                 title: "\(point.label), \(LabFormat.bytes(point.inputBytes!)) a task: \(LabFormat.duration(point.wallSeconds))")
            }, color: color, stroke: stroke, circle: "r=\"3.5\"")
            legend += frame.legendEntry(at: frame.top + 8 + Double(drawn.count - 1) * 18, color: color, stroke: stroke, cell.label)
        }
        return svg + legend + "</svg>\n"
    }
}
