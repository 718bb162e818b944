/// The convoy's curve: how late a 1 ms sleep wakes behind 1, 2, 4, … CPU-bound threads, with no
/// GIL, under the simulated one and in CPython. Behind one CPU thread the sleeper waits about one
/// switch interval (its own wait runs out and it asks for the lock); behind several, the CPU
/// thread that asks for each switch is awake when the lock is let go and usually takes it, so the
/// sleeper loses hand-offs and waits several intervals.

import Foundation

/// One line of the convoy's curve: a mode's probe medians by CPU threads.
struct ConvoyCurve: Sendable {
    var mode: LabMode
    var name: String
    /// (CPU threads, the probe's median and 90th-percentile lateness in ms, unsettled), by CPU threads.
    var points: [(threads: Int, lateMs: Double, tailMs: Double, unsettled: Bool)]

    /// The curves in `cells`, Swift's first, in the order their first points appear; each
    /// starts behind one CPU thread with the mixed workload's cell of its mode.
    static func curves(_ cells: [LabCell]) -> [ConvoyCurve] {
        var curves: [ConvoyCurve] = []
        for cell in cells where cell.workload == .convoy && cell.wallSeconds > 0 {
            guard let late = cell.probeMedianMs else { continue }
            let point = (threads: cell.workers, lateMs: late, tailMs: cell.probeP90Ms ?? late, unsettled: cell.unsettled != nil)
            if let index = curves.firstIndex(where: { $0.mode == cell.mode }) {
                curves[index].points.append(point)
            } else {
                curves.append(ConvoyCurve(mode: cell.mode, name: cell.label, points: [point]))
            }
        }
        for index in curves.indices {
            if let one = cells.first(where: { $0.workload == .mixed && $0.mode == curves[index].mode && $0.wallSeconds > 0 }), let late = one.probeMedianMs {
                curves[index].points.append((threads: 1, lateMs: late, tailMs: one.probeP90Ms ?? late, unsettled: one.unsettled != nil))
            }
        }
        return curves.map { curve in
            var curve = curve
            curve.points.sort { $0.threads < $1.threads }
            return curve
        }
    }

    func late(at threads: Int) -> Double? { points.first { $0.threads == threads }?.lateMs }

    /// What the run measured, for the section's second line.
    static func sizes(_ config: LabReport.Config) -> String {
        let limit = (config.convoyCellMs ?? 0) > 0 ? " (or as many as \(Conclusions.format(config.convoyCellMs!)) ms allow)" : ""
        return "a 1 ms sleep, \(config.probeCount) times\(limit), behind \(([1] + config.widths(.convoy)).map(String.init).joined(separator: ", ")) CPU-bound threads "
            + "(behind 1: the mixed workload's); the median lateness; switch interval \(Conclusions.format(config.switchIntervalMs)) ms"
    }

    /// The conclusion the curves give: each GIL curve from its first to its last point, in
    /// switch intervals, and how close the simulation came to CPython. `nil` without curves.
    static func conclusion(_ cells: [LabCell], config: LabReport.Config) -> String? {
        let curves = curves(cells)
        guard !curves.isEmpty else { return nil }
        let interval = config.switchIntervalMs
        let ms = { (value: Double) in Conclusions.format(value) + " ms" }
        var parts: [String] = []
        for curve in curves {
            guard let first = curve.points.first, let last = curve.points.last else { continue }
            if curve.mode == .threads {
                parts.append("with no GIL at most \(ms(curve.points.map(\.lateMs).max() ?? 0)) at any width")
            } else {
                parts.append("\(curve.name) \(ms(first.lateMs)) behind \(first.threads) and \(ms(last.lateMs)) behind \(last.threads) "
                    + "(\(Conclusions.format(first.lateMs / interval))× and \(Conclusions.format(last.lateMs / interval))× the switch interval)")
            }
        }
        var line = "Convoy by CPU threads (how late a 1 ms sleep wakes, the median): " + parts.joined(separator: "; ")
        if let simulated = curves.first(where: { $0.mode == .threadsUnderSimulatedGIL }),
           let cpython = curves.first(where: { $0.mode == .cpython(.threads) }) {
            let ratios = simulated.points.compactMap { point in cpython.late(at: point.threads).map { point.lateMs / $0 } }.filter(\.isFinite)
            if let low = ratios.min(), let high = ratios.max() {
                line += " — the simulated GIL was \(Conclusions.format(low))×–\(Conclusions.format(high))× CPython's"
            }
        }
        return line + ". Behind several CPU threads the sleeper queues with each of them: the one that asks for a switch is awake when the lock is let go, and usually takes it."
    }

    /// The verdict's decision: the GIL curves grow from one CPU thread to the most, and the
    /// no-GIL curve stays below half the GIL's at every width.
    ///
    /// Growth is read in the slow tenth (the 90th percentile), not the median: behind several
    /// threads a sleeper still wins its first hand-off now and then, so a median of the ten
    /// sleeps a time-limited probe may make can land at one interval by luck (seen once in
    /// CPython behind 8 threads: 4.65 ms), while the sleeps that lose hand-offs wait tens of ms
    /// in every run.
    static func decide(_ cells: [LabCell]) -> (holds: Bool, because: String)? {
        let curves = curves(cells)
        guard let gil = curves.first(where: { $0.mode == .threadsUnderSimulatedGIL }), gil.points.count >= 2 else { return nil }
        let ms = { (value: Double) in Conclusions.format(value) + " ms" }
        var failures: [String] = []
        var numbers: [String] = []
        for curve in curves where curve.mode != .threads {
            guard let low = curve.points.first, let high = curve.points.last else { continue }
            numbers.append("\(curve.name) \(ms(low.lateMs)) behind \(low.threads) CPU thread\(low.threads == 1 ? "" : "s"), \(ms(high.lateMs)) behind \(high.threads) "
                + "(the slowest tenth from \(ms(low.tailMs)) to \(ms(high.tailMs)))")
            if high.tailMs < low.tailMs * LabThresholds.convoyGrowth {
                failures.append("\(curve.name)'s slowest tenth was \(ms(high.tailMs)) late behind \(high.threads) CPU threads, not more than \(Conclusions.format(LabThresholds.convoyGrowth))× the \(ms(low.tailMs)) behind \(low.threads)")
            }
        }
        if let free = curves.first(where: { $0.mode == .threads }) {
            let worst = free.points.max { $0.lateMs < $1.lateMs }
            if let worst { numbers.append("with no GIL at most \(ms(worst.lateMs))") }
            for point in free.points {
                if let locked = gil.late(at: point.threads), point.lateMs >= locked / 2 {
                    failures.append("with no GIL a sleep behind \(point.threads) CPU threads was \(ms(point.lateMs)) late, not well below the GIL's \(ms(locked))")
                }
            }
        }
        let because = numbers.joined(separator: "; ")
        return failures.isEmpty ? (true, because) : (false, failures.joined(separator: "; "))
    }
}

extension TerminalReport {
    /// The convoy's curve as text: a row per mode with the median lateness at each width, the
    /// simulation's ratio to CPython's under them, and why any point is unsettled; after the
    /// section's title and sizes when `heading`.
    public static func convoyChart(_ cells: [LabCell], config: LabReport.Config, heading: Bool = true) -> String {
        let curves = ConvoyCurve.curves(cells)
        var lines = heading ? [LabWorkload.convoy.title, ConvoyCurve.sizes(config)] : []
        let widths = Array(Set(curves.flatMap { $0.points.map(\.threads) })).sorted()
        guard !curves.isEmpty, !widths.isEmpty else {
            let notes = cells.filter { $0.workload == .convoy }.compactMap(\.note)
            return (lines + ["(no points)" + (notes.isEmpty ? "" : ": " + notes.joined(separator: "; "))]).joined(separator: "\n") + "\n"
        }
        let nameWidth = max(24, curves.map(\.name.count).max() ?? 0)
        var header = LabFormat.pad("CPU threads", to: nameWidth)
        for width in widths { header += LabFormat.pad(String(width) + " ", to: 10, alignRight: true) }
        lines.append(header)
        let top = curves.flatMap { $0.points.map(\.lateMs) }.max() ?? 1
        for curve in curves {
            var row = LabFormat.pad(curve.name, to: nameWidth)
            for width in widths {
                let point = curve.points.first { $0.threads == width }
                let text = point.map { Conclusions.format($0.lateMs) + " ms" + ($0.unsettled ? "?" : " ") } ?? "— "
                row += LabFormat.pad(text, to: 10, alignRight: true)
            }
            lines.append(row + "  " + sparkline(widths.map { curve.late(at: $0) }, top: top))
        }
        if let simulated = curves.first(where: { $0.mode == .threadsUnderSimulatedGIL }),
           let cpython = curves.first(where: { $0.mode == .cpython(.threads) }) {
            var row = LabFormat.pad("simulated ÷ CPython", to: nameWidth)
            for width in widths {
                let ratio = simulated.late(at: width).flatMap { sim in cpython.late(at: width).map { sim / $0 } }
                row += LabFormat.pad(ratio.map { LabFormat.speedup($0) + " " } ?? "— ", to: 10, alignRight: true)
            }
            lines.append(row)
        }
        for cell in cells where cell.workload == .convoy {
            if let why = cell.unsettled { lines.append("? unsettled: \(cell.label) behind \(cell.workers) — \(why)") }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

extension HTMLReport {
    /// The convoy's curve as an SVG line chart: the median lateness in ms (y) against CPU threads
    /// (x, on a log₂ axis), one line per mode, the switch interval as a dashed line.
    public static func convoySVG(_ cells: [LabCell], config: LabReport.Config) -> String {
        let curves = ConvoyCurve.curves(cells)
        let widths = Array(Set(curves.flatMap { $0.points.map(\.threads) })).sorted()
        let frame = ChartFrame(plotWidth: 440, plotHeight: 220, left: 56, legendWidth: 300)
        guard let first = widths.first, let last = widths.last else { return ChartFrame.empty("no points") }
        let highest = max(config.switchIntervalMs, curves.flatMap { $0.points.map(\.lateMs) }.max() ?? 1)
        let step = max(1, (highest * 1.1 / 6).rounded(.up))
        let yTop = (highest * 1.1 / step).rounded(.up) * step
        let span = max(log2(Double(last)) - log2(Double(first)), 1)
        func x(_ width: Int) -> Double { frame.left + (log2(Double(width)) - log2(Double(first))) / span * frame.plotWidth }
        func y(_ ms: Double) -> Double { frame.bottom - min(ms, yTop) / yTop * frame.plotHeight }
        let colors = ["#16a34a", "#f59e0b", "#dc2626", "#2563eb"]
        var svg = frame.open(label: LabWorkload.convoy.title)
        for tick in stride(from: 0.0, through: yTop, by: step) { svg += frame.gridLine(at: y(tick), label: "\(Conclusions.format(tick)) ms") }
        for width in widths { svg += frame.xLabel(at: x(width), String(width)) }
        svg += frame.xTitle("CPU-bound threads beside the sleeper")
        // The switch interval.
        let interval = y(config.switchIntervalMs)
        svg += "<line class=\"interval\" x1=\"\(coordinate(frame.left))\" y1=\"\(coordinate(interval))\" x2=\"\(coordinate(frame.left + frame.plotWidth))\" y2=\"\(coordinate(interval))\" stroke=\"#94a3b8\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>"
        svg += "<text x=\"\(coordinate(frame.left + frame.plotWidth - 4))\" y=\"\(coordinate(interval - 4))\" text-anchor=\"end\" fill=\"#64748b\">switch interval</text>\n"
        var legend = ""
        for (index, curve) in curves.enumerated() {
            let color = colors[index % colors.count]
            svg += frame.curve(curve.points.map { point in
                ChartFrame.Point(x: x(point.threads), y: y(point.lateMs), hollow: point.unsettled,
                                 title: "\(curve.name) behind \(point.threads): \(Conclusions.format(point.lateMs)) ms")
            }, color: color, stroke: "stroke-width=\"2.5\"")
            legend += frame.legendEntry(at: frame.top + 4 + Double(index) * 18, color: color, stroke: "stroke-width=\"2.5\"", curve.name)
        }
        return svg + legend + "</svg>\n"
    }
}
