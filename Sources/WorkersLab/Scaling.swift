/// The scaling curves: speed-up against workers for CPU-bound and I/O-bound work, and the Amdahl
/// fit that says how much of each curve behaves as if it were serial.

import Foundation

extension SwiftExperiments {
    /// The Swift modes a scaling curve is drawn for.
    static let scalingModes: [LabMode] = [.threads, .threadsUnderSimulatedGIL, .processes]

    /// The points of `workload`'s scaling curve: the same tasks serially once, then on threads,
    /// threads under the simulated GIL and processes at each width (widths outside, modes inside,
    /// so a slow moment of the machine hits every mode at one width, not one mode's curve).
    func scaling(_ workload: LabWorkload) async throws -> [LabCell] {
        let base: LabWorkload = workload == .cpuScaling ? .cpu : .ioSleep
        var sized = config
        if workload == .cpuScaling {
            sized.cpuTasks = max(1, config.scalingTasks)
            // The kernel was calibrated for cpuTaskMs; the curve's tasks are shorter.
            let scale = config.scalingTaskMs / max(config.cpuTaskMs, 1e-9)
            sized.kernelIterations = max(Kernel.checkpointEvery, Int(Double(config.kernelIterations) * scale))
        } else {
            sized.ioTasks = max(1, config.ioScalingTasks)
            sized.ioSleepMs = config.ioScalingSleepMs
        }
        var cells: [LabCell] = []
        func point(_ mode: LabMode, width: Int) async throws {
            var atWidth = sized
            atWidth.workers = width
            let experiments = SwiftExperiments(config: atWidth, executable: executable, progress: progress, ioThreads: width)
            progress("\(workload.rawValue) · \(mode) · \(width)")
            var cell = try await experiments.measure(base, mode: mode, port: nil)
            cell.workload = workload
            cell.spans = nil
            cells.append(cell)
        }
        try await point(.serial, width: 1)
        for width in config.widths(workload) {
            for mode in Self.scalingModes { try await point(mode, width: width) }
        }
        // The serial run again at the end: every point is divided by the mean of the two, so a
        // machine whose speed drifts during the curve (a VM's core can) is met halfway, and one
        // slow serial run moves the curve by half as much. (The faster of the two would bias
        // every point low; a point the drift still lifts past its bound is unsettled.)
        try await point(.serial, width: 1)
        let again = cells.removeLast()
        if again.wallSeconds > 0, cells[0].wallSeconds > 0 {
            cells[0].wallSeconds = (cells[0].wallSeconds + again.wallSeconds) / 2
            cells[0].note = "the mean of two serial runs, one before the curve and one after"
        }
        let serial = cells[0].wallSeconds
        for index in cells.indices where cells[index].wallSeconds > 0 && serial > 0 {
            cells[index].speedup = serial / cells[index].wallSeconds
        }
        return cells
    }
}

/// One curve of a scaling workload: one mode (which names its source), its points in order of
/// width.
struct ScalingCurve: Sendable {
    var workload: LabWorkload
    var mode: LabMode
    /// The measured points, by width; never empty.
    var points: [LabCell]

    /// Where it was measured.
    var source: LabSource { points[0].source }

    /// The curves of `workload` in `cells`, in the order their first points appear; the serial
    /// baselines are not curves.
    static func curves(_ cells: [LabCell], workload: LabWorkload) -> [ScalingCurve] {
        var curves: [ScalingCurve] = []
        for cell in cells where cell.workload == workload && cell.wallSeconds > 0 && cell.mode.kind != .serial {
            if let index = curves.firstIndex(where: { $0.mode == cell.mode }) {
                curves[index].points.append(cell)
            } else {
                curves.append(ScalingCurve(workload: workload, mode: cell.mode, points: [cell]))
            }
        }
        return curves.map { curve in
            var curve = curve
            curve.points.sort { $0.workers < $1.workers }
            return curve
        }
    }

    /// The curve as a person reads it: "Swift threads", "CPython multiprocessing", …
    var name: String {
        let kind: String
        switch mode.kind {
        case .threads: kind = source == .swift ? "threads" : "threading"
        case .threadsUnderSimulatedGIL: kind = "threads + simulated GIL"
        case .processes: kind = source == .swift ? "processes" : "multiprocessing"
        case .serial: kind = "serial"
        case .oneThreadAsync: kind = source == .swift ? "async tasks on one thread" : "asyncio"
        case .poolStart: kind = "pool start-up"
        }
        return source.name + " " + kind
    }

    /// What a width can give at most: the CPUs for CPU-bound work, the waits for I/O-bound.
    static func ideal(workload: LabWorkload, width: Int, cpus: Int, config: LabReport.Config) -> Double {
        workload == .cpuScaling ? Double(max(1, min(width, cpus))) : Double(max(1, min(width, max(1, config.ioScalingTasks))))
    }

    /// The serial fraction `s` of Amdahl's law, S(n) = 1 ÷ (s + (1 − s) ÷ n), fitted by least
    /// squares on 1 ÷ S to the settled points whose effective width n (the workers, and for CPU
    /// work no more than the CPUs) is above 1; `nil` with none. 0 is work that divides
    /// perfectly, 1 work that runs one piece at a time. Pure.
    static func serialFraction(_ points: [(width: Int, speedup: Double)]) -> Double? {
        var numerator = 0.0, denominator = 0.0
        for point in points where point.width > 1 && point.speedup > 0 {
            let x = 1 - 1 / Double(point.width)
            let y = 1 / point.speedup - 1 / Double(point.width)
            numerator += x * y
            denominator += x * x
        }
        guard denominator > 0 else { return nil }
        return min(1, max(0, numerator / denominator))
    }

    /// This curve's serial fraction on a machine of `cpus` CPUs, from its settled points.
    func serialFraction(cpus: Int) -> Double? {
        let usable = points.filter { $0.unsettled == nil && $0.speedup > 0 }.map { cell in
            (width: workload == .cpuScaling ? min(cell.workers, cpus) : cell.workers, speedup: cell.speedup)
        }
        return Self.serialFraction(usable)
    }
}

// MARK: - Drawing

extension ScalingCurve {
    /// What the curve's tasks were, for the line under a chart's heading.
    static func sizes(_ cells: [LabCell], workload: LabWorkload, config: LabReport.Config, cpus: Int) -> String {
        let serials = cells.filter { $0.workload == workload && $0.mode.kind == .serial && $0.wallSeconds > 0 }
            .map { "\(LabFormat.wall($0.wallSeconds)) in \($0.source.name)" }
        let tasks = workload == .cpuScaling
            ? "\(config.scalingTasks) kernel tasks of \(Conclusions.format(config.scalingTaskMs)) ms"
            : "\(config.ioScalingTasks) sleeps of \(Conclusions.format(config.ioScalingSleepMs)) ms"
        let ideal = workload == .cpuScaling ? "ideal: the workers, up to the \(cpus) CPUs" : "ideal: the workers, up to the \(config.ioScalingTasks) waits"
        return tasks + (serials.isEmpty ? "" : " (serially \(serials.joined(separator: ", ")))") + "; \(ideal)"
    }
}

extension TerminalReport {
    /// A scaling curve as text: one row per curve with its speed-up at each width (`?` where a
    /// point is unsettled), a sparkline of the same, and its Amdahl serial fraction; the ideal
    /// row first, and why each unsettled point is so under the chart.
    public static func scalingChart(_ cells: [LabCell], workload: LabWorkload, config: LabReport.Config, cpus: Int) -> String {
        let curves = ScalingCurve.curves(cells, workload: workload)
        let widths = Array(Set(curves.flatMap { $0.points.map(\.workers) } + config.widths(workload))).sorted()
        var lines = [workload.title, ScalingCurve.sizes(cells, workload: workload, config: config, cpus: cpus)]
        guard !curves.isEmpty, !widths.isEmpty else {
            let notes = cells.filter { $0.workload == workload }.compactMap(\.note)
            return (lines + ["(no points)" + (notes.isEmpty ? "" : ": " + notes.joined(separator: "; "))]).joined(separator: "\n") + "\n"
        }
        let ideal = widths.map { ScalingCurve.ideal(workload: workload, width: $0, cpus: cpus, config: config) }
        let top = max(ideal.max() ?? 1, curves.flatMap { $0.points.map(\.speedup) }.max() ?? 1)
        let nameWidth = max(8, curves.map(\.name.count).max() ?? 0)
        func row(_ name: String, _ values: [Double?], unsettled: [Bool], tail: String) -> String {
            var text = LabFormat.pad(name, to: nameWidth)
            for (index, value) in values.enumerated() {
                let cell = value.map { LabFormat.speedup($0) + (unsettled[index] ? "?" : " ") } ?? "— "
                text += LabFormat.pad(cell, to: 8, alignRight: true)
            }
            return text + "  " + sparkline(values, top: top) + tail
        }
        var header = LabFormat.pad("workers", to: nameWidth)
        for width in widths { header += LabFormat.pad(String(width) + " ", to: 8, alignRight: true) }
        lines.append(header)
        lines.append(row("ideal", ideal, unsettled: ideal.map { _ in false }, tail: ""))
        for curve in curves {
            let values = widths.map { width in curve.points.first { $0.workers == width }?.speedup }
            let unsettled = widths.map { width in curve.points.first { $0.workers == width }?.unsettled != nil }
            let fraction = curve.serialFraction(cpus: cpus).map { "  serial fraction " + ScalingCurve.percent($0) } ?? ""
            lines.append(row(curve.name, values, unsettled: unsettled, tail: fraction))
        }
        for curve in curves {
            for point in curve.points { if let why = point.unsettled { lines.append("? unsettled: \(point.label) — \(why)") } }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// One block character per value, its height the value's share of `top`.
    static func sparkline(_ values: [Double?], top: Double) -> String {
        let glyphs = Array("▁▂▃▄▅▆▇█")
        return String(values.map { value in
            guard let value, top > 0 else { return " " }
            let level = Int((value / top * Double(glyphs.count - 1)).rounded())
            return glyphs[min(max(level, 0), glyphs.count - 1)]
        })
    }
}

extension ScalingCurve {
    /// A fraction as a whole percentage ("2 %").
    static func percent(_ fraction: Double) -> String { "\(Int((fraction * 100).rounded())) %" }
}

extension HTMLReport {
    /// A scaling curve as an SVG line chart: speed-up (y) against workers (x, on a log₂ axis),
    /// one line per curve with a point per width (hollow where unsettled), the ideal drawn dashed,
    /// the CPU count as a vertical line, and a legend with each curve's Amdahl serial fraction.
    public static func scalingSVG(_ cells: [LabCell], workload: LabWorkload, config: LabReport.Config, cpus: Int) -> String {
        let curves = ScalingCurve.curves(cells, workload: workload)
        let widths = Array(Set(curves.flatMap { $0.points.map(\.workers) } + config.widths(workload))).sorted()
        let frame = ChartFrame(plotWidth: 440, plotHeight: 260, left: 48, legendWidth: 380)
        guard let first = widths.first, let last = widths.last else { return ChartFrame.empty("no points") }
        let ideal = widths.map { ScalingCurve.ideal(workload: workload, width: $0, cpus: cpus, config: config) }
        let highest = max(ideal.max() ?? 1, curves.flatMap { $0.points.map(\.speedup) }.max() ?? 1)
        let yTop = max(2, (highest * 1.1).rounded(.up))
        let span = max(log2(Double(last)) - log2(Double(first)), 1)
        func x(_ width: Int) -> Double { frame.left + (log2(Double(width)) - log2(Double(first))) / span * frame.plotWidth }
        func y(_ speedup: Double) -> Double { frame.bottom - min(speedup, yTop) / yTop * frame.plotHeight }
        let colors = ["#2563eb", "#f59e0b", "#16a34a", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d"]

        var svg = frame.open(label: workload.title)
        // Axes and grid.
        let step = yTop <= 4 ? 0.5 : yTop <= 10 ? 1 : (yTop / 8).rounded(.up)
        for tick in stride(from: 0.0, through: yTop, by: step) { svg += frame.gridLine(at: y(tick), label: "\(Conclusions.format(tick))×") }
        for width in widths { svg += frame.xLabel(at: x(width), String(width)) }
        svg += frame.xTitle("workers")
        svg += "<line x1=\"\(coordinate(frame.left))\" y1=\"\(coordinate(frame.bottom))\" x2=\"\(coordinate(frame.left + frame.plotWidth))\" y2=\"\(coordinate(frame.bottom))\" stroke=\"#94a3b8\"/>\n"
        // The CPU count.
        if workload == .cpuScaling || cpus < last {
            let cpuX = x(max(cpus, first))
            if cpuX <= frame.left + frame.plotWidth {
                svg += "<line x1=\"\(coordinate(cpuX))\" y1=\"\(coordinate(frame.top))\" x2=\"\(coordinate(cpuX))\" y2=\"\(coordinate(frame.bottom))\" stroke=\"#64748b\" stroke-dasharray=\"2 3\"/>"
                svg += "<text x=\"\(coordinate(cpuX + 4))\" y=\"\(coordinate(frame.top + 10))\" fill=\"#64748b\">\(cpus) CPUs</text>\n"
            }
        }
        // The ideal.
        let idealPoints = zip(widths, ideal).map { "\(coordinate(x($0))),\(coordinate(y($1)))" }.joined(separator: " ")
        svg += "<polyline class=\"ideal\" points=\"\(idealPoints)\" fill=\"none\" stroke=\"#94a3b8\" stroke-width=\"2\" stroke-dasharray=\"6 4\"/>\n"
        // The curves.
        var legend = "<text x=\"\(coordinate(frame.left + frame.plotWidth + 24))\" y=\"\(coordinate(frame.top + 4))\" fill=\"#94a3b8\">- - ideal</text>\n"
        for (index, curve) in curves.enumerated() {
            let color = colors[index % colors.count]
            svg += frame.curve(curve.points.map { point in
                ChartFrame.Point(x: x(point.workers), y: y(point.speedup), hollow: point.unsettled != nil,
                                 title: "\(point.label): \(LabFormat.speedup(point.speedup))" + (point.unsettled.map { " — unsettled: " + $0 } ?? ""))
            }, color: color, stroke: "stroke-width=\"\(curve.source == .swift ? "2.5" : "1.5")\"")
            let fraction = curve.serialFraction(cpus: cpus).map { " · serial fraction " + ScalingCurve.percent($0) } ?? ""
            legend += frame.legendEntry(at: frame.top + 22 + Double(index) * 18, color: color, stroke: "stroke-width=\"2.5\"", curve.name + fraction)
        }
        return svg + legend + "</svg>\n"
    }
}

extension ScalingCurve {
    /// The conclusion a curve's numbers give: each curve's best speed-up and where, and its
    /// Amdahl serial fraction, with what the fraction means for processes (their start-up and
    /// the moving of inputs and outputs count as serial). `nil` without curves.
    static func conclusion(_ cells: [LabCell], workload: LabWorkload, config: LabReport.Config, cpus: Int) -> String? {
        let curves = curves(cells, workload: workload)
        guard !curves.isEmpty else { return nil }
        let x = { (value: Double) in Conclusions.format(value) + "×" }
        let parts = curves.map { curve -> String in
            let settled = curve.points.filter { $0.unsettled == nil }
            guard let best = settled.max(by: { $0.speedup < $1.speedup }) else { return "\(curve.name): every point unsettled" }
            let fraction = curve.serialFraction(cpus: cpus).map { ", serial fraction \(percent($0))" } ?? ""
            return "\(curve.name) at most \(x(best.speedup)) (\(best.workers) worker\(best.workers == 1 ? "" : "s")\(fraction))"
        }
        let subject = workload == .cpuScaling
            ? "CPU-bound scaling (\(config.scalingTasks) tasks of \(Conclusions.format(config.scalingTaskMs)) ms, \(cpus) CPUs)"
            : "I/O-bound scaling (\(config.ioScalingTasks) sleeps of \(Conclusions.format(config.ioScalingSleepMs)) ms, \(cpus) CPUs)"
        let meaning = workload == .cpuScaling
            ? "an Amdahl fit's serial fraction near 0 % is work that divides across the cores, near 100 % work that runs one piece at a time (a GIL); a process pool's includes starting its workers"
            : "waits overlap whatever the cores, so threads keep scaling with the waits; a process pool's serial fraction is mostly starting one process per worker"
        return "\(subject): " + parts.joined(separator: "; ") + " — " + meaning + "."
    }
}
