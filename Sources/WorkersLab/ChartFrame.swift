/// The frame the lab's SVG line charts share (the scaling curves, the data-heavy sizes, the
/// convoy): a plot area with a legend to its right, horizontal grid lines with their labels,
/// labels under the x axis and its title, a curve with a point per value (hollow where
/// unsettled), and legend entries. Each chart keeps its own scales: it maps values to `x` and `y`.
struct ChartFrame {
    var plotWidth: Double
    var plotHeight: Double
    /// Room for the y labels.
    var left: Double
    var top: Double = 16
    var legendWidth: Double

    var width: Double { left + plotWidth + 24 + legendWidth }
    var height: Double { top + plotHeight + 44 }
    /// The plot's bottom edge.
    var bottom: Double { top + plotHeight }

    /// A point of a curve: where it is drawn, whether hollow, and its tooltip.
    struct Point {
        var x: Double
        var y: Double
        var hollow: Bool
        var title: String
    }

    /// The opening `<svg>` tag, sized to the frame, named `label` for screen readers.
    func open(label: String) -> String {
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" "
            + "viewBox=\"0 0 \(Int(width)) \(Int(height))\" font-family=\"system-ui, sans-serif\" font-size=\"11\" role=\"img\" "
            + "aria-label=\"\(LabFormat.escape(label))\">\n"
    }

    /// A grid line across the plot at `y`, labelled at its left.
    func gridLine(at y: Double, label: String) -> String {
        "<line x1=\"\(coordinate(left))\" y1=\"\(coordinate(y))\" x2=\"\(coordinate(left + plotWidth))\" y2=\"\(coordinate(y))\" stroke=\"#e2e8f0\"/>"
            + "<text x=\"\(coordinate(left - 6))\" y=\"\(coordinate(y + 4))\" text-anchor=\"end\" fill=\"#475569\">\(LabFormat.escape(label))</text>\n"
    }

    /// A label under the x axis at `x`.
    func xLabel(at x: Double, _ text: String) -> String {
        "<text x=\"\(coordinate(x))\" y=\"\(coordinate(bottom + 16))\" text-anchor=\"middle\" fill=\"#475569\">\(LabFormat.escape(text))</text>\n"
    }

    /// The x axis's title, centred under its labels.
    func xTitle(_ text: String) -> String {
        "<text x=\"\(coordinate(left + plotWidth / 2))\" y=\"\(coordinate(bottom + 34))\" text-anchor=\"middle\" fill=\"#334155\">\(LabFormat.escape(text))</text>\n"
    }

    /// A curve through `points` and a circle on each. `stroke` is the line's attributes after its
    /// colour (width, dashes); `circle` the circles' (radius, stroke width).
    func curve(_ points: [Point], color: String, stroke: String, circle: String = "r=\"4\" stroke-width=\"1.5\"") -> String {
        let line = points.map { "\(coordinate($0.x)),\(coordinate($0.y))" }.joined(separator: " ")
        var svg = "<polyline class=\"curve\" points=\"\(line)\" fill=\"none\" stroke=\"\(color)\" \(stroke)/>\n"
        for point in points {
            svg += "<circle cx=\"\(coordinate(point.x))\" cy=\"\(coordinate(point.y))\" fill=\"\(point.hollow ? "#fff" : color)\" stroke=\"\(color)\" \(circle)>"
            svg += "<title>\(LabFormat.escape(point.title))</title></circle>\n"
        }
        return svg
    }

    /// A legend entry at `y`: a short line drawn as the curve's, and its text.
    func legendEntry(at y: Double, color: String, stroke: String, _ text: String) -> String {
        "<line x1=\"\(coordinate(left + plotWidth + 24))\" y1=\"\(coordinate(y - 4))\" x2=\"\(coordinate(left + plotWidth + 44))\" y2=\"\(coordinate(y - 4))\" stroke=\"\(color)\" \(stroke)/>"
            + "<text x=\"\(coordinate(left + plotWidth + 50))\" y=\"\(coordinate(y))\" fill=\"#1e293b\">\(LabFormat.escape(text))</text>\n"
    }

    /// What a chart with nothing to draw shows.
    static func empty(_ text: String) -> String {
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"320\" height=\"30\"><text x=\"0\" y=\"20\">\(LabFormat.escape(text))</text></svg>\n"
    }
}
