import Foundation

/// One workload measured on one system: samples in seconds (per operation, or whole runs).
struct Measurement: Codable, Sendable {
    var suite: String
    var workload: String
    var system: String
    /// What a sample is: "per-op", "per-job", "per-element", "wall" or "p99-late".
    var unit: String
    var samples: [Double]
    var note: String?

    var runs: Int { samples.count }
    var median: Double {
        let sorted = samples.sorted()
        guard !sorted.isEmpty else { return .nan }
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }
    var minimum: Double { samples.min() ?? .nan }
    var maximum: Double { samples.max() ?? .nan }
}

/// A row of the JSON output.
struct Row: Codable {
    var suite: String
    var workload: String
    var system: String
    var unit: String
    var median_s: Double?
    var min_s: Double?
    var max_s: Double?
    var runs: Int
    var ratio_to_ours: Double?
    var note: String?
}

enum Report {
    static let ours = "swift-workers ThreadPool"

    static func rows(_ measurements: [Measurement], reference ours: String = ours) -> [Row] {
        measurements.map { m in
            let reference = measurements.first { $0.workload == m.workload && $0.system == ours }
            let ratio = reference.map { m.median / $0.median }
            return Row(
                suite: m.suite, workload: m.workload, system: m.system, unit: m.unit,
                median_s: m.runs > 0 ? m.median : nil, min_s: m.runs > 0 ? m.minimum : nil,
                max_s: m.runs > 0 ? m.maximum : nil, runs: m.runs,
                ratio_to_ours: m.runs > 0 ? ratio : nil, note: m.note
            )
        }
    }

    static func table(_ measurements: [Measurement], reference: String = ours) -> String {
        var lines: [String] = []
        let header = ["workload", "system", "unit", "median", "min", "max", "runs", "× ours"]
        var body: [[String]] = []
        for row in rows(measurements, reference: reference) {
            body.append([
                row.workload, row.system, row.unit,
                row.median_s.map { human($0, unit: row.unit) } ?? "—", row.min_s.map { human($0, unit: row.unit) } ?? "—",
                row.max_s.map { human($0, unit: row.unit) } ?? "—",
                String(row.runs), row.ratio_to_ours.map { String(format: "%.2f", $0) } ?? "—",
            ])
        }
        let widths = header.indices.map { column in
            ([header[column]] + body.map { $0[column] }).map(\.count).max()!
        }
        func line(_ cells: [String]) -> String {
            zip(cells, widths).enumerated().map { index, pair in
                index < 3 ? pair.0.padding(toLength: pair.1, withPad: " ", startingAt: 0)
                    : String(repeating: " ", count: pair.1 - pair.0.count) + pair.0
            }.joined(separator: "  ")
        }
        lines.append(line(header))
        lines.append(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  "))
        var previous: String?
        for cells in body {
            if let previous, previous != cells[0] { lines.append("") }
            lines.append(line(cells))
            previous = cells[0]
        }
        let notes = measurements.compactMap { m in m.note.map { "\(m.system), \(m.workload): \($0)" } }
        if !notes.isEmpty { lines.append(""); lines += notes }
        return lines.joined(separator: "\n")
    }

    static func human(_ seconds: Double, unit: String = "") -> String {
        if unit == "MiB" { return String(format: "%.1f MiB", seconds) }
        if unit == "jobs/s" { return String(format: "%.0f/s", seconds) }
        if unit == "× ideal" { return String(format: "%.2f×", seconds) }
        return switch seconds {
        case ..<1e-6: String(format: "%.0f ns", seconds * 1e9)
        case ..<1e-3: String(format: "%.2f µs", seconds * 1e6)
        case ..<1: String(format: "%.2f ms", seconds * 1e3)
        default: String(format: "%.3f s", seconds)
        }
    }
}
