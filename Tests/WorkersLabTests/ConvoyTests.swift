import Foundation
import Testing
@testable import WorkersLab

/// The convoy's curve: its widths, the curves it draws (behind one CPU thread from the mixed
/// workload), its verdict and targets, and how it is drawn — all from recorded numbers, no run.
@Suite struct ConvoyTests {
    static let config = Lab.defaultConfig(quick: false, workers: 2)

    /// The mixed workload's probe cells (behind one CPU thread) and the convoy's at 2, 4 and 8,
    /// from `late` (ms by mode and CPU threads).
    static func cells(_ late: [LabMode: [Int: Double]]) -> [LabCell] {
        var cells: [LabCell] = []
        for (mode, points) in late.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            let source: LabSource = mode.rawValue.hasPrefix("cpython") ? .cpython : .swift
            for (threads, ms) in points.sorted(by: { $0.key < $1.key }) {
                let workload: LabWorkload = threads == 1 ? .mixed : .convoy
                cells.append(LabCell(workload: workload, mode: mode, label: "\(mode)", workers: threads == 1 ? 2 : threads,
                                     wallSeconds: 0.06 * (1 + ms), speedup: 1, cpuPerWall: 1, source: source,
                                     probeMedianMs: ms, probeP90Ms: threads == 1 ? ms * 1.01 : ms * 2))
            }
        }
        return cells
    }

    /// What this machine measured (medians of 60 sleeps, 5 ms switch interval).
    static let measured: [LabMode: [Int: Double]] = [
        .threads: [1: 0.07, 2: 0.065, 4: 0.066, 8: 0.066],
        .threadsUnderSimulatedGIL: [1: 5.18, 2: 19.6, 4: 25.5, 8: 40.5],
        .cpython(.threads): [1: 5.19, 2: 32.4, 4: 25.6, 8: 35.6],
    ]

    func judge(_ cells: [LabCell], otherCPUs: Double? = nil) -> LabVerdict? {
        var machine = LabReport.Machine(cpus: 2, os: "Linux", python: nil)
        machine.otherCPUs = otherCPUs
        return Verdicts.judge(Settling.judge(cells, config: Self.config, cpus: 2), config: Self.config, machine: machine).first { $0.workload == .convoy }
    }

    @Test func itsWidthsAreTheCPUCurvesBeyondOne() {
        #expect(Self.config.widths(.convoy) == [2, 4, 8])
        #expect(Lab.defaultConfig(quick: false, workers: 1).widths(.convoy) == [2, 4])
        // Not in --quick: the curve needs dozens of sleeps of tens of ms at each width.
        #expect(Lab.defaultConfig(quick: true, workers: 2).widths(.convoy).isEmpty)
    }

    @Test func eachCurveStartsWithTheMixedWorkloadsProbe() throws {
        let curves = ConvoyCurve.curves(Self.cells(Self.measured))
        #expect(Set(curves.map(\.mode)) == [.threads, .threadsUnderSimulatedGIL, .cpython(.threads)])
        let gil = try #require(curves.first { $0.mode == .threadsUnderSimulatedGIL })
        #expect(gil.points.map(\.threads) == [1, 2, 4, 8])
        #expect(gil.late(at: 1) == 5.18 && gil.late(at: 8) == 40.5)
        // No convoy cells, no curves: the mixed cells alone are not a curve.
        #expect(ConvoyCurve.curves(Self.cells(Self.measured).filter { $0.workload == .mixed }).isEmpty)
    }

    @Test func aGrowingConvoyConfirmsTheClaim() throws {
        let verdict = try #require(judge(Self.cells(Self.measured)))
        #expect(verdict.outcome == .confirmed, "\(verdict.because)")
        #expect(verdict.because.contains("5.18 ms behind 1 CPU thread, 40.5 ms behind 8 (the slowest tenth from 5.23 ms to 81 ms)"))
    }

    @Test func aFlatConvoyOrASlowNoGILProbeContradictsIt() throws {
        var flat = Self.measured
        flat[.threadsUnderSimulatedGIL] = [1: 5.2, 2: 5.3, 4: 5.1, 8: 5.9]
        // Flat in its slow tenth too.
        let flatCells = Self.cells(flat).map { cell in
            var cell = cell
            if cell.mode == .threadsUnderSimulatedGIL { cell.probeP90Ms = (cell.probeMedianMs ?? 0) * 1.05 }
            return cell
        }
        let contradicted = try #require(judge(flatCells))
        #expect(contradicted.outcome == .contradicted)
        #expect(contradicted.because.contains("not more than 1.5×"))
        // A median at one interval by luck (a time-limited probe's ten sleeps) is not a flat
        // convoy while its slow tenth waits: the claim stands on the tail.
        var lucky = Self.cells(Self.measured)
        if let index = lucky.firstIndex(where: { $0.workload == .convoy && $0.mode == .cpython(.threads) && $0.workers == 8 }) {
            lucky[index].probeMedianMs = 4.65
            lucky[index].probeP90Ms = 60
        }
        #expect(judge(lucky)?.outcome == .confirmed)
        var slow = Self.measured
        slow[.threads] = [1: 0.07, 2: 0.07, 4: 0.07, 8: 30]
        let noGIL = try #require(judge(Self.cells(slow)))
        #expect(noGIL.outcome == .contradicted && noGIL.because.contains("with no GIL a sleep behind 8 CPU threads"))
        // On a busy machine the same numbers leave the claim open instead.
        #expect(judge(flatCells, otherCPUs: 1.2)?.outcome == .unsettled)
    }

    @Test func targetsCompareCPythonWithTheSimulationAtEveryWidth() throws {
        let targets = LabTarget.targets(config: Self.config, cpus: 2, workloads: LabWorkload.allCases, python: true)
            .filter { $0.name.hasPrefix("convoy behind") }
        #expect(targets.map(\.workers) == [nil, 2, 4, 8])
        #expect(targets.map(\.workload) == [.mixed, .convoy, .convoy, .convoy])
        for target in targets {
            #expect(target.mode == .cpython(.threads) && target.relativeTo == .threadsUnderSimulatedGIL && target.value == "probe_median_ms")
            #expect(target.atLeast == 0.5 && target.atMost == 2)
        }
        // Without python3 there is nothing to compare with.
        #expect(LabTarget.targets(config: Self.config, cpus: 2, workloads: LabWorkload.allCases, python: false).allSatisfy { $0.workload != .convoy })
    }

    @Test func theTextChartShowsEachCurveAndTheRatio() throws {
        let chart = TerminalReport.convoyChart(Self.cells(Self.measured), config: Self.config)
        let lines = chart.split(separator: "\n").map(String.init)
        #expect(lines[0] == LabWorkload.convoy.title)
        #expect(lines[2].hasPrefix("CPU threads") && lines[2].contains(" 1 ") && lines[2].contains(" 8 "))
        #expect(lines.contains { $0.hasPrefix("threads-gil") && $0.contains("40.5 ms") })
        let ratio = try #require(lines.first { $0.hasPrefix("simulated ÷ CPython") })
        #expect(ratio.contains("1.1×"))  // 40.5 / 35.6 behind 8
    }

    @Test func theSVGDrawsALinePerCurveAndTheSwitchInterval() {
        let svg = HTMLReport.convoySVG(Self.cells(Self.measured), config: Self.config)
        #expect(svg.components(separatedBy: "class=\"curve\"").count - 1 == 3)
        #expect(svg.components(separatedBy: "<circle").count - 1 == 12)
        #expect(svg.contains("class=\"interval\"") && svg.contains("switch interval"))
        #expect(HTMLReport.convoySVG([], config: Self.config).contains("no points"))
    }

    @Test func theConclusionNamesTheIntervalsAndTheAgreement() throws {
        let line = try #require(ConvoyCurve.conclusion(Self.cells(Self.measured), config: Self.config))
        #expect(line.contains("5.18 ms behind 1 and 40.5 ms behind 8"))
        #expect(line.contains("the simulated GIL was 0.6×–1.14× CPython's"))
        #expect(ConvoyCurve.conclusion([], config: Self.config) == nil)
    }
}
