/// Renders lab results as plain text for a terminal: aligned tables and compact Gantt charts drawn
/// with block characters. No ANSI colours unless asked for.
public enum TerminalReport {
    /// An aligned table of the cells of `workload` (other cells in `cells` are ignored), headed by the
    /// workload's title. Columns: mode, source, workers, wall, speed-up, cpu/wall, then the checksum
    /// (when some cell has one) or, for the mixed workload, the probe's median / p90 lateness, then a
    /// note column when some cell has a note. An unsettled cell's speed-up is marked `?`, and
    /// why is said under the table.
    public static func table(_ cells: [LabCell], workload: LabWorkload) -> String {
        let rows = cells.filter { $0.workload == workload }
        let columns = tableColumns(rows, workload: workload)
        let widths = columns.map { column in
            max(column.header.count, column.values.map(\.count).max() ?? 0)
        }
        var lines = [workload.title]
        lines.append(line(columns.map(\.header), widths: widths, rightAligned: columns.map(\.rightAligned)))
        lines.append(widths.map { String(repeating: "─", count: $0) }.joined(separator: "  "))
        for index in rows.indices {
            let values = columns.map { $0.values[index] }
            lines.append(line(values, widths: widths, rightAligned: columns.map(\.rightAligned)))
        }
        if rows.isEmpty { lines.append("(no cells)") }
        for cell in rows {
            if let why = cell.unsettled { lines.append("? unsettled: \(cell.label) — \(why)") }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// A compact Gantt chart of one cell: a header line with the cell's label and wall time, one line
    /// per lane ("thread 0 │" followed by `width` characters, each the dominant state of one slice of
    /// `0...timeScale`: `█` running, `░` gil-wait, `·` waiting, space idle) and a scale line from
    /// "0 s" to the time scale. Pass the same `timeScale` to cells that should be compared; a
    /// non-positive one uses the cell's own end. With `color`, running is blue, gil-wait yellow and
    /// waiting dim (ANSI escapes).
    public static func gantt(_ cell: LabCell, width: Int = 60, timeScale: Double, color: Bool = false) -> String {
        let slices = max(1, width)
        let scale = LabFormat.effectiveTimeScale(timeScale, for: cell)
        let rows = LabFormat.rows(for: cell)
        var lines = ["\(cell.label) — \(LabFormat.wall(cell.wallSeconds))"]
        guard !rows.isEmpty else {
            lines.append("  (no timeline recorded)")
            return lines.joined(separator: "\n") + "\n"
        }
        let labelWidth = rows.map(\.label.count).max() ?? 0
        for row in rows {
            let glyphs = dominantGlyphs(row.spans, slices: slices, scale: scale)
            lines.append(LabFormat.pad(row.label, to: labelWidth) + " │" + render(glyphs, color: color))
        }
        lines.append(String(repeating: " ", count: labelWidth + 2) + scaleLine(scale, width: slices))
        return lines.joined(separator: "\n") + "\n"
    }

    /// One line explaining the Gantt characters (coloured like ``gantt(_:width:timeScale:color:)``
    /// when `color` is set).
    public static func legend(color: Bool = false) -> String {
        let entries: [(Glyph, String)] = [(.running, "running"), (.gilWait, "gil-wait"), (.waiting, "waiting"), (.idle, "idle")]
        return entries.map { glyph, name in
            (glyph == .idle ? "' '" : render([glyph], color: color)) + " " + name
        }.joined(separator: "   ") + "\n"
    }

    /// A section's claim and its verdict: "claim: …" then "verdict: confirmed — because …"
    /// (green, red or yellow when `color` is set).
    public static func verdict(_ verdict: LabVerdict, color: Bool = false) -> String {
        let word = verdict.outcome.rawValue
        let painted: String
        if color {
            let code = switch verdict.outcome { case .confirmed: "32"; case .contradicted: "31"; case .unsettled: "33" }
            painted = "\u{1B}[1;\(code)m\(word)\u{1B}[0m"
        } else {
            painted = word
        }
        return "\nclaim: \(verdict.claim)\nverdict: \(painted) — \(verdict.because)\n"
    }
}

// MARK: - Table

extension TerminalReport {
    private struct Column {
        var header: String
        var rightAligned: Bool
        var values: [String]
    }

    private static func tableColumns(_ cells: [LabCell], workload: LabWorkload) -> [Column] {
        var columns = [
            Column(header: "mode", rightAligned: false, values: cells.map(\.label)),
            Column(header: "source", rightAligned: false, values: cells.map(\.source.rawValue)),
            Column(header: "workers", rightAligned: true, values: cells.map { String($0.workers) }),
            Column(header: "wall", rightAligned: true, values: cells.map { LabFormat.wall($0.wallSeconds) }),
            Column(header: "speed-up", rightAligned: true, values: cells.map { LabFormat.speedup($0.speedup) + ($0.unsettled == nil ? "" : " ?") }),
            Column(header: "rounds", rightAligned: true, values: cells.map { LabFormat.spread($0) ?? "" }),
            Column(header: "cpu/wall", rightAligned: true, values: cells.map { LabFormat.ratio($0.cpuPerWall) }),
        ]
        if workload == .mixed {
            let values = cells.map { LabFormat.probe(medianMs: $0.probeMedianMs, p90Ms: $0.probeP90Ms) }
            columns.append(Column(header: "probe median / p90", rightAligned: true, values: values))
        } else if cells.contains(where: { $0.checksum != nil }) {
            columns.append(Column(header: "checksum", rightAligned: false, values: cells.map { $0.checksum ?? LabFormat.missing }))
        }
        if cells.contains(where: { !($0.note ?? "").isEmpty }) {
            columns.append(Column(header: "note", rightAligned: false, values: cells.map { $0.note ?? "" }))
        }
        return columns
    }

    private static func line(_ values: [String], widths: [Int], rightAligned: [Bool]) -> String {
        let padded = values.indices.map { index in
            LabFormat.pad(values[index], to: widths[index], alignRight: rightAligned[index])
        }
        var text = padded.joined(separator: "  ")
        while text.hasSuffix(" ") { text.removeLast() }
        return text
    }
}

// MARK: - Gantt

extension TerminalReport {
    /// What one character of a Gantt line shows.
    private enum Glyph: Character {
        case running = "█"
        case gilWait = "░"
        case waiting = "·"
        case idle = " "

        init(_ state: LabSpanState) {
            switch state {
            case .running: self = .running
            case .gilWait: self = .gilWait
            case .waiting: self = .waiting
            }
        }

        var ansi: String? {
            switch self {
            case .running: "\u{1B}[34m"
            case .gilWait: "\u{1B}[33m"
            case .waiting: "\u{1B}[2m"
            case .idle: nil
            }
        }
    }

    private static let priority: [LabSpanState] = [.running, .gilWait, .waiting]

    /// For each of `slices` equal parts of `0...scale`, the state covering most of it, or idle when
    /// uncovered time is larger. Ties go to running, then gil-wait, then waiting.
    private static func dominantGlyphs(_ spans: [LabSpan], slices: Int, scale: Double) -> [Glyph] {
        let slice = scale / Double(slices)
        var cover = [[Double]](repeating: [0, 0, 0], count: slices)
        for span in spans where span.start < scale && span.end > 0 {
            guard let stateIndex = priority.firstIndex(of: span.state) else { continue }
            let first = min(slices - 1, max(0, Int(span.start / slice)))
            let last = min(slices - 1, max(0, Int(span.end / slice)))
            for index in first...last {
                let low = Double(index) * slice
                let overlap = min(span.end, low + slice) - max(span.start, low)
                if overlap > 0 { cover[index][stateIndex] += overlap }
            }
        }
        return cover.map { amounts in
            var best = 0
            for index in amounts.indices where amounts[index] > amounts[best] { best = index }
            let idle = slice - amounts.reduce(0, +)
            guard amounts[best] > 0, amounts[best] >= idle else { return .idle }
            return Glyph(priority[best])
        }
    }

    /// The glyphs as text, with one ANSI colour escape per run of equal glyphs when `color` is set.
    private static func render(_ glyphs: [Glyph], color: Bool) -> String {
        var text = ""
        var index = 0
        while index < glyphs.count {
            let glyph = glyphs[index]
            var runEnd = index
            while runEnd < glyphs.count, glyphs[runEnd] == glyph { runEnd += 1 }
            let run = String(repeating: String(glyph.rawValue), count: runEnd - index)
            if color, let code = glyph.ansi {
                text += code + run + "\u{1B}[0m"
            } else {
                text += run
            }
            index = runEnd
        }
        return text
    }

    /// "0 s" under the first slice and the time scale ending under the last, "…" in between.
    private static func scaleLine(_ scale: Double, width: Int) -> String {
        let start = "0 s"
        let end = LabFormat.duration(scale)
        let gap = width - start.count - end.count
        guard gap >= 3 else { return start + " … " + end }
        let left = (gap - 1) / 2
        return start + String(repeating: " ", count: left) + "…" + String(repeating: " ", count: gap - 1 - left) + end
    }
}
