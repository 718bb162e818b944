/// Formatting and timeline helpers shared by ``HTMLReport`` and ``TerminalReport``: durations,
/// speed-ups, ratios, percentages, lane names, the rows of a timeline and axis ticks. Pure Swift, no
/// Foundation, so both renderers print the same numbers the same way on every platform.
enum LabFormat {
    /// The placeholder for a number that is missing or not finite.
    static let missing = "—"

    // MARK: Numbers

    /// `value` with exactly `decimals` digits after the point ("1.02"), rounded half away from zero.
    static func fixed(_ value: Double, decimals: Int) -> String {
        guard value.isFinite else { return missing }
        let places = max(0, min(decimals, 9))
        var scale: Int64 = 1
        for _ in 0..<places { scale *= 10 }
        let scaled = (abs(value) * Double(scale)).rounded()
        // Beyond 2⁵³ there are no digits after the point left to print; Swift's own form is exact.
        guard scaled < 9e15 else { return abs(value) < 9e15 ? String(Int64(value.rounded())) : String(value) }
        let units = Int64(scaled)
        let sign = value < 0 && units != 0 ? "-" : ""
        let whole = String(units / scale)
        guard places > 0 else { return sign + whole }
        let fraction = String(units % scale)
        let padding = String(repeating: "0", count: places - fraction.count)
        return sign + whole + "." + padding + fraction
    }

    /// A wall time: "0.42 ms", "4.2 ms", "812 ms", "1.02 s", "12.3 s", "125 s"; "—" when negative or
    /// not finite.
    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return missing }
        if seconds == 0 { return "0 ms" }
        let milliseconds = seconds * 1000
        // Each bound is where the next digit's rounding would carry ("9.96" would print "10.0").
        if milliseconds < 0.995 { return fixed(milliseconds, decimals: 2) + " ms" }
        if milliseconds < 9.95 { return fixed(milliseconds, decimals: 1) + " ms" }
        if milliseconds.rounded() < 1000 { return fixed(milliseconds, decimals: 0) + " ms" }
        if seconds < 9.995 { return fixed(seconds, decimals: 2) + " s" }
        if seconds < 99.95 { return fixed(seconds, decimals: 1) + " s" }
        return fixed(seconds, decimals: 0) + " s"
    }

    /// A measured wall time as ``duration(_:)`` prints it, or "—" when nothing was measured (≤ 0).
    static func wall(_ seconds: Double) -> String {
        seconds > 0 ? duration(seconds) : missing
    }

    /// A speed-up factor: "0.45×", "7.9×", "123×"; "—" when not positive or not finite.
    static func speedup(_ factor: Double) -> String {
        guard factor.isFinite, factor > 0 else { return missing }
        if factor < 0.995 { return fixed(factor, decimals: 2) + "×" }
        if factor < 99.95 { return fixed(factor, decimals: 1) + "×" }
        return fixed(factor, decimals: 0) + "×"
    }

    /// A cell's rounds as "1.8–2.0" (lowest to highest speed-up), or `nil` for one round or
    /// rounds that all agree to the digit shown.
    static func spread(_ cell: LabCell) -> String? {
        guard let low = cell.speedupMin, let high = cell.speedupMax, (cell.rounds ?? 0) > 1 else { return nil }
        let (lowText, highText) = (speedup(low).dropLast(), speedup(high).dropLast())
        return lowText == highText ? nil : "\(lowText)–\(highText)"
    }

    /// A plain ratio such as CPU ÷ wall: "0.98", "7.85"; "—" when negative or not finite.
    static func ratio(_ value: Double) -> String {
        guard value.isFinite, value >= 0 else { return missing }
        return fixed(value, decimals: 2)
    }

    /// A fraction as a percentage: 0.042 → "4.2%", 0.5 → "50%"; "—" when not finite.
    static func percent(_ fraction: Double) -> String {
        guard fraction.isFinite else { return missing }
        let value = fraction * 100
        if value != 0, abs(value) < 9.95 { return fixed(value, decimals: 1) + "%" }
        return fixed(value, decimals: 0) + "%"
    }

    /// A number of milliseconds without its unit: "0.12", "1.23", "12.3", "123"; "—" when missing.
    static func milliseconds(_ value: Double?) -> String {
        guard let value, value.isFinite else { return missing }
        if abs(value) < 9.995 { return fixed(value, decimals: 2) }
        if abs(value) < 99.95 { return fixed(value, decimals: 1) }
        return fixed(value, decimals: 0)
    }

    /// A configured duration in milliseconds: "5 ms", "0.5 ms", "1.5 s"; whole numbers without decimals.
    static func configMilliseconds(_ value: Double) -> String {
        guard value.isFinite, value >= 0 else { return missing }
        if value >= 1000 { return duration(value / 1000) }
        if value == value.rounded() { return fixed(value, decimals: 0) + " ms" }
        return milliseconds(value) + " ms"
    }

    /// The probe's lateness as "median / p90 ms" ("0.08 / 0.15 ms"); "—" when neither is known.
    static func probe(medianMs: Double?, p90Ms: Double?) -> String {
        guard medianMs != nil || p90Ms != nil else { return missing }
        return milliseconds(medianMs) + " / " + milliseconds(p90Ms) + " ms"
    }

    /// A time on an axis whose ticks are `step` seconds apart: "0 s", "0.25 s", "2 s".
    static func axisSeconds(_ seconds: Double, step: Double) -> String {
        guard seconds != 0 else { return "0 s" }
        return fixed(seconds, decimals: decimalsFor(step: step)) + " s"
    }

    /// The digits after the point that make every multiple of `step` exact ("0.25" → 2).
    static func decimalsFor(step: Double) -> Int {
        guard step.isFinite, step > 0 else { return 0 }
        var decimals = 0
        var scaled = step
        while decimals < 6, abs(scaled - scaled.rounded()) > 1e-9 * max(1, scaled) {
            scaled *= 10
            decimals += 1
        }
        return decimals
    }

    // MARK: Axis

    /// Tick spacing of 1, 2 or 5 × 10ⁿ seconds giving at most `maxTicks` intervals over `span`.
    static func tickStep(span: Double, maxTicks: Int) -> Double {
        guard span.isFinite, span > 0 else { return 1 }
        let target = span / Double(max(1, maxTicks))
        var magnitude = 1.0
        while magnitude > target { magnitude /= 10 }
        while magnitude * 10 <= target { magnitude *= 10 }
        for multiple in [1.0, 2.0, 5.0, 10.0] where magnitude * multiple >= target {
            return magnitude * multiple
        }
        return magnitude * 10
    }

    /// The tick positions 0, step, 2·step, … up to and including `span` (with a little slack).
    static func ticks(span: Double, step: Double) -> [Double] {
        guard span.isFinite, span > 0, step.isFinite, step > 0 else { return [0] }
        let count = Int((span / step + 1e-6).rounded(.down))
        return (0...max(0, min(count, 1000))).map { Double($0) * step }
    }

    // MARK: Timelines

    /// The label of a worker lane: "process 2" for modes whose id contains `processes`, else "thread 2".
    static func laneName(mode: LabMode, lane: Int) -> String {
        (mode.kind == .processes ? "process " : "thread ") + String(lane)
    }

    /// The label of the row that holds the mixed workload's probe (spans with a negative task).
    static let probeLabel = "probe"

    /// One row of a timeline: a worker lane, or the probe.
    struct Row: Sendable {
        /// "thread 0", "process 1" or "probe".
        var label: String
        /// The row's valid spans, sorted by start.
        var spans: [LabSpan]
    }

    /// Lanes up to this number are shown even when some of them recorded nothing.
    static let maxFilledLanes = 512

    /// Whether a span can be drawn: finite times, end not before start, a lane from 0.
    static func isDrawable(_ span: LabSpan) -> Bool {
        span.start.isFinite && span.end.isFinite && span.end >= span.start && span.lane >= 0
    }

    /// The rows of a cell's timeline, lane 0 first. Lanes from 0 to the highest lane used each get a
    /// row (an unused lane stays visible, empty). A lane that holds only probe spans (task < 0) is
    /// labelled "probe"; probe spans sharing a lane with task spans move to a "probe" row of their
    /// own right below it, so they never hide the work they interleave with.
    static func rows(for cell: LabCell) -> [Row] {
        let spans = (cell.spans ?? []).filter(isDrawable).sorted { $0.start < $1.start }
        var byLane: [Int: [LabSpan]] = [:]
        for span in spans { byLane[span.lane, default: []].append(span) }
        guard let highestLane = byLane.keys.max() else { return [] }
        // Fill gaps between lanes so lane numbers line up, unless the numbering is implausibly sparse.
        let lanes = highestLane < maxFilledLanes ? Array(0...highestLane) : byLane.keys.sorted()
        var rows: [Row] = []
        for lane in lanes {
            let laneSpans = byLane[lane] ?? []
            let work = laneSpans.filter { $0.task >= 0 }
            let probe = laneSpans.filter { $0.task < 0 }
            if work.isEmpty, !probe.isEmpty {
                rows.append(Row(label: probeLabel, spans: probe))
                continue
            }
            rows.append(Row(label: laneName(mode: cell.mode, lane: lane), spans: work))
            if !probe.isEmpty { rows.append(Row(label: probeLabel, spans: probe)) }
        }
        return rows
    }

    /// Where a cell's timeline ends: its wall time or its last span's end, whichever is later.
    static func timelineEnd(_ cell: LabCell) -> Double {
        let lastEnd = (cell.spans ?? []).filter(isDrawable).map(\.end).max() ?? 0
        let wall = cell.wallSeconds.isFinite ? cell.wallSeconds : 0
        return max(wall, lastEnd, 0)
    }

    /// Whether a cell has at least one span to draw.
    static func hasTimeline(_ cell: LabCell) -> Bool {
        (cell.spans ?? []).contains(where: isDrawable)
    }

    /// The time scale shared by the timelines of one workload: the latest end among its cells that
    /// have spans (cells without a timeline do not stretch the axis). 1 s when nothing is known.
    static func sharedTimeScale(_ cells: [LabCell]) -> Double {
        let end = cells.filter(hasTimeline).map(timelineEnd).max() ?? 0
        return end > 0 ? end : 1
    }

    /// `timeScale` when it is a usable positive number, otherwise the cell's own end (or 1 s).
    static func effectiveTimeScale(_ timeScale: Double, for cell: LabCell) -> Double {
        if timeScale.isFinite, timeScale > 0 { return timeScale }
        let end = timelineEnd(cell)
        return end > 0 ? end : 1
    }

    /// The share of recorded lane-time spent in each state, in the order running, gil-wait, waiting;
    /// states with no time are left out.
    static func stateShares(_ cell: LabCell) -> [(state: LabSpanState, fraction: Double)] {
        var totals: [LabSpanState: Double] = [:]
        for span in (cell.spans ?? []) where isDrawable(span) {
            totals[span.state, default: 0] += span.end - span.start
        }
        let sum = totals.values.reduce(0, +)
        guard sum > 0 else { return [] }
        return [LabSpanState.running, .gilWait, .waiting].compactMap { state in
            guard let time = totals[state], time > 0 else { return nil }
            return (state, time / sum)
        }
    }

    /// The word for a state as the legends print it.
    static func stateName(_ state: LabSpanState) -> String {
        state.rawValue
    }

    // MARK: Text

    /// `text` with `&`, `<`, `>`, `"` and `'` replaced by entities, safe in HTML/SVG text and attributes.
    static func escape(_ text: String) -> String {
        var result = ""
        result.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "&": result += "&amp;"
            case "<": result += "&lt;"
            case ">": result += "&gt;"
            case "\"": result += "&quot;"
            case "'": result += "&#39;"
            default: result.append(character)
            }
        }
        return result
    }

    /// `text` padded with spaces to `width` characters, on the right (`alignRight == false`) or left.
    static func pad(_ text: String, to width: Int, alignRight: Bool = false) -> String {
        let filler = String(repeating: " ", count: max(0, width - text.count))
        return alignRight ? filler + text : text + filler
    }
}
