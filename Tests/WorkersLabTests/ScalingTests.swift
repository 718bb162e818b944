import Foundation
import Testing
@testable import WorkersLab

/// The scaling curves: their widths, the Amdahl fit, the settling of their points, the verdicts
/// they give, and how they are drawn — all from recorded numbers, no run.
@Suite struct ScalingTests {
    static let config = Lab.defaultConfig(quick: false, workers: 2)

    /// A curve's cells: a serial run, then each mode's speed-up at each width from `speedups`.
    static func curveCells(_ workload: LabWorkload, _ speedups: [LabMode: [Int: Double]], source: LabSource = .swift) -> [LabCell] {
        var cells = [LabCell(workload: workload, mode: source == .swift ? .serial : .cpython(.serial), label: "serial", workers: 1,
                             wallSeconds: 0.32, speedup: 1, cpuPerWall: 1, source: source)]
        for (mode, points) in speedups.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            for (width, speedup) in points.sorted(by: { $0.key < $1.key }) {
                cells.append(LabCell(workload: workload, mode: mode, label: "\(mode)(\(width))", workers: width,
                                     wallSeconds: 0.32 / speedup, speedup: speedup, cpuPerWall: 1, source: source))
            }
        }
        return cells
    }

    static let goodCPU: [LabMode: [Int: Double]] = [
        .threads: [1: 1.0, 2: 1.95, 4: 1.96, 8: 1.94],
        .threadsUnderSimulatedGIL: [1: 1.0, 2: 1.0, 4: 0.98, 8: 0.97],
        .processes: [1: 0.9, 2: 1.7, 4: 1.75, 8: 1.6],
    ]
    static let goodIO: [LabMode: [Int: Double]] = [
        .threads: [1: 1.0, 2: 2.0, 4: 3.9, 8: 7.7],
        .threadsUnderSimulatedGIL: [1: 1.0, 2: 2.0, 4: 3.9, 8: 7.6],
        .processes: [1: 0.9, 2: 1.7, 4: 2.5, 8: 3.0],
    ]

    func judged(_ cells: [LabCell]) -> [LabCell] { Settling.judge(cells, config: Self.config, cpus: 2) }

    func verdict(_ cells: [LabCell], _ workload: LabWorkload, cpus: Int = 2) -> LabVerdict? {
        let machine = LabReport.Machine(cpus: cpus, os: "Linux", python: nil)
        return Verdicts.judge(Settling.judge(cells, config: Self.config, cpus: cpus), config: Self.config, machine: machine).first { $0.workload == workload }
    }

    @Test func widthsArePowersOfTwoUpToFourTimesTheCPUs() {
        #expect(Lab.powersOfTwo(upTo: 8) == [1, 2, 4, 8])
        #expect(Lab.powersOfTwo(upTo: 6) == [1, 2, 4, 6])
        #expect(Lab.powersOfTwo(upTo: 1) == [1])
        #expect(Self.config.scalingWidths == [1, 2, 4, 8])
        #expect(Self.config.ioScalingWidths == [1, 2, 4, 8])
        #expect(Lab.defaultConfig(quick: true, workers: 4).scalingWidths == [1, 4, 16])
        #expect(Lab.defaultConfig(quick: false, workers: 4).ioScalingWidths == [1, 2, 4, 8, 16])
    }

    @Test func amdahlsSerialFractionIsFittedFromThePoints() throws {
        #expect(ScalingCurve.serialFraction([(2, 2), (4, 4), (8, 8)]) == 0)
        #expect(ScalingCurve.serialFraction([(2, 1), (4, 1), (8, 1)]) == 1)
        let amdahl = { (n: Int) in 1 / (0.2 + 0.8 / Double(n)) }
        let fitted = try #require(ScalingCurve.serialFraction([(2, amdahl(2)), (4, amdahl(4)), (8, amdahl(8))]))
        #expect(abs(fitted - 0.2) < 1e-9)
        // Width 1 says nothing about the fraction; no wider point, no fit.
        #expect(ScalingCurve.serialFraction([(1, 1)]) == nil)
        // Slower than serial at every width: clamped to all serial.
        #expect(ScalingCurve.serialFraction([(2, 0.7), (4, 0.6)]) == 1)
    }

    @Test func aCPUCurvesFitCountsNoMoreThanTheCPUs() throws {
        let curves = ScalingCurve.curves(Self.curveCells(.cpuScaling, Self.goodCPU), workload: .cpuScaling)
        #expect(curves.map(\.mode) == [.processes, .threads, .threadsUnderSimulatedGIL])
        #expect(curves.allSatisfy { $0.points.map(\.workers) == [1, 2, 4, 8] })
        // Flat past 2 CPUs is perfect scaling on 2 CPUs, not a serial part.
        let threads = try #require(curves.first { $0.mode == .threads }?.serialFraction(cpus: 2))
        #expect(threads < 0.05)
        let gil = try #require(curves.first { $0.mode == .threadsUnderSimulatedGIL }?.serialFraction(cpus: 2))
        #expect(gil > 0.95)
    }

    @Test func aPointAboveItsBoundIsUnsettledAndLeftOutOfTheFit() throws {
        var speedups = Self.goodCPU
        speedups[.threads]![8] = 2.9  // 8 threads on 2 CPUs cannot give 2.9×
        speedups[.threadsUnderSimulatedGIL]![4] = 1.4  // a GIL cannot give 1.4×
        let cells = judged(Self.curveCells(.cpuScaling, speedups))
        let unsettled = cells.filter { $0.unsettled != nil }.map(\.label)
        #expect(Set(unsettled) == ["threads(8)", "threads-gil(4)"])
        let gil = try #require(ScalingCurve.curves(cells, workload: .cpuScaling).first { $0.mode == .threadsUnderSimulatedGIL })
        #expect(try #require(gil.serialFraction(cpus: 2)) > 0.95)
    }

    @Test func theCPUCurveConfirmsTheClaimAndADisturbedOneSaysUnsettled() throws {
        let good = try #require(verdict(Self.curveCells(.cpuScaling, Self.goodCPU), .cpuScaling))
        #expect(good.outcome == .confirmed)
        #expect(good.because.contains("1.95× at 2 and 1.94× at 8 workers on 2 CPUs"))

        var gilScales = Self.goodCPU
        gilScales[.threadsUnderSimulatedGIL]![2] = 1.6  // past a GIL mode's bound of 1×: unsettled
        let disturbed = try #require(verdict(Self.curveCells(.cpuScaling, gilScales), .cpuScaling))
        #expect(disturbed.outcome == .unsettled)

        var noScaling = Self.goodCPU
        noScaling[.threads] = [1: 1.0, 2: 1.1, 4: 1.05, 8: 1.0]
        let contradicted = try #require(verdict(Self.curveCells(.cpuScaling, noScaling), .cpuScaling))
        #expect(contradicted.outcome == .contradicted)
        #expect(contradicted.because.contains("reached at most 1.1× (2 workers), below the 1.5×"))

        // One slow point is outvoted by the curve: 1.38× at 2 workers, 1.95× at 8.
        var oneSlowPoint = Self.goodCPU
        oneSlowPoint[.threads]![2] = 1.38
        #expect(try #require(verdict(Self.curveCells(.cpuScaling, oneSlowPoint), .cpuScaling)).outcome == .confirmed)

        #expect(try #require(verdict(Self.curveCells(.cpuScaling, Self.goodCPU), .cpuScaling, cpus: 1)).outcome == .unsettled)
    }

    @Test func theIOCurveConfirmsThatWaitsScalePastTheCores() throws {
        let good = try #require(verdict(Self.curveCells(.ioScaling, Self.goodIO), .ioScaling))
        #expect(good.outcome == .confirmed)
        var serialised = Self.goodIO
        serialised[.threadsUnderSimulatedGIL]![8] = 2.0
        let short = try #require(verdict(Self.curveCells(.ioScaling, serialised), .ioScaling))
        #expect(short.outcome == .contradicted)
        #expect(short.because.contains("threads-gil(8) below 6×"))
    }

    @Test func theTerminalChartShowsEveryPointTheIdealAndTheFit() {
        var speedups = Self.goodCPU
        speedups[.threads]![8] = 2.9
        let cells = judged(Self.curveCells(.cpuScaling, speedups))
        let text = TerminalReport.scalingChart(cells, workload: .cpuScaling, config: Self.config, cpus: 2)
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines[0] == LabWorkload.cpuScaling.title)
        #expect(lines.contains { $0.hasPrefix("ideal") && $0.contains("1.0×") && $0.contains("2.0×") })
        let threads = lines.first { $0.hasPrefix("Swift threads ") }
        #expect(threads?.contains("2.9×?") == true)
        #expect(threads?.contains("serial fraction") == true)
        #expect(lines.contains { $0.hasPrefix("? unsettled: threads(8)") })
        #expect(TerminalReport.sparkline([0, 1, 2, nil], top: 2) == "▁▅█ ")
    }

    @Test func theSVGChartDrawsTheIdealTheCPUsAndHollowUnsettledPoints() {
        var speedups = Self.goodCPU
        speedups[.threads]![8] = 2.9
        let cells = judged(Self.curveCells(.cpuScaling, speedups))
        let svg = HTMLReport.scalingSVG(cells, workload: .cpuScaling, config: Self.config, cpus: 2)
        #expect(svg.hasPrefix("<svg xmlns=\"http://www.w3.org/2000/svg\""))
        #expect(svg.components(separatedBy: "class=\"ideal\"").count == 2)
        #expect(svg.components(separatedBy: "class=\"curve\"").count == 4)
        #expect(svg.components(separatedBy: "<circle").count == 13)
        #expect(svg.components(separatedBy: "fill=\"#fff\"").count == 2)
        #expect(svg.contains(">2 CPUs</text>"))
        let report = LabReport(machine: LabReport.Machine(cpus: 2, os: "Linux", python: nil), config: Self.config, cells: cells, conclusions: [])
        let html = HTMLReport.render(report)
        #expect(html.contains("id=\"workload-cpu-scaling\""))
        #expect(html.contains("class=\"scaling\""))
    }

    @Test func theConclusionNamesEachCurvesBestAndItsFit() throws {
        let cells = judged(Self.curveCells(.ioScaling, Self.goodIO))
        let line = try #require(ScalingCurve.conclusion(cells, workload: .ioScaling, config: Self.config, cpus: 2))
        #expect(line.hasPrefix("I/O-bound scaling (8 sleeps of 20 ms, 2 CPUs): "))
        #expect(line.contains("Swift threads at most 7.7× (8 workers, serial fraction 1 %)"))
        #expect(line.contains("Swift processes at most 3× (8 workers"))
        #expect(ScalingCurve.conclusion(cells, workload: .cpuScaling, config: Self.config, cpus: 2) == nil)
    }
}
