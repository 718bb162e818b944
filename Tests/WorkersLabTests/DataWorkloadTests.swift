import Foundation
import Testing
@testable import WorkersLab

/// The data-heavy workload: where processes start to beat threads, what moving a MiB costs, the
/// verdict, and the drawing — from recorded numbers, no run.
@Suite struct DataWorkloadTests {
    static let config = Lab.defaultConfig(quick: false, workers: 2)
    static let sizes = [1 << 10, 16 << 10, 256 << 10, 1 << 20, 4 << 20]

    /// Cells of one source: wall = fixed + perMiB × MiB moved, per mode.
    static func cells(_ source: LabSource, serial: (Double, Double), threads: (Double, Double), processes: (Double, Double), startup: Double = 0.02) -> [LabCell] {
        func mode(_ swift: LabMode, _ python: LabMode.Python) -> LabMode { source == .swift ? swift : .cpython(python) }
        var cells = [LabCell(workload: .data, mode: mode(.poolStart, .poolStart), label: "\(source) pool start-up", workers: 2,
                             wallSeconds: startup, speedup: 0, cpuPerWall: 0, source: source)]
        for size in sizes {
            let mebibytes = Double(config.dataTasks * size) / 1_048_576
            let serialWall = serial.0 + serial.1 * mebibytes
            for (kind, python, line) in [(LabMode.serial, LabMode.Python.serial, serial), (.threads, .threads, threads), (.processes, .processes, processes)] {
                let wall = line.0 + line.1 * mebibytes
                var cell = LabCell(workload: .data, mode: mode(kind, python), label: "\(source) \(kind)", workers: kind == .serial ? 1 : 2,
                                   wallSeconds: wall, speedup: serialWall / wall, cpuPerWall: 0, source: source)
                cell.inputBytes = size
                cells.append(cell)
            }
        }
        return cells
    }

    // CPython: threads pay the whole work (20 ms/MiB) under the GIL, processes half of it plus a
    // 5 ms/MiB move and a 1 ms fixed cost: they cross between 16 and 256 KiB a task.
    static let cpython = cells(.cpython, serial: (0.0001, 0.020), threads: (0.0003, 0.020), processes: (0.001, 0.015))
    // Swift: threads halve the work; processes add a 1 ms/MiB move: they never win.
    static let swift = cells(.swift, serial: (0.0001, 0.002), threads: (0.0001, 0.001), processes: (0.0005, 0.002))

    @Test func theCrossingIsWhereProcessesStayFaster() throws {
        let sides = DataAnalysis.analyse(Self.swift + Self.cpython, config: Self.config)
        #expect(sides.map(\.source) == [.swift, .cpython])
        #expect(sides[0].crossing == nil)
        let crossing = try #require(sides[1].crossing)
        #expect(crossing.below == 16 << 10 && crossing.from == 256 << 10)
        #expect(sides[1].startup == 0.02)
    }

    @Test func theCostsPerMiBAndTheBreakEvenComeFromTheSlopes() throws {
        let cpython = try #require(DataAnalysis.analyse(Self.cpython, config: Self.config).first?.costs(cores: 2))
        #expect(abs(cpython.work - 0.020) < 1e-9)
        #expect(abs(cpython.move - 0.005) < 1e-9)  // 15 ms/MiB less half of the 20 ms of work
        #expect(abs(cpython.breakEven! - 0.010) < 1e-9)  // m × c ÷ (c − 1) on 2 cores
        #expect(DataAnalysis.analyse(Self.cpython, config: Self.config).first?.costs(cores: 1)?.breakEven == nil)
    }

    @Test func theConclusionSaysWhereEachSideWonAndWhy() throws {
        let line = try #require(DataAnalysis.conclusion(Self.swift + Self.cpython, config: Self.config, cpus: 2))
        #expect(line.hasPrefix("Data-heavy (2 tasks of 1 KiB to 4 MiB, every 8th byte read and rewritten): "))
        #expect(line.contains("Swift: threads were faster at every size up to 4 MiB a task, and its pool took 20 ms to start"))
        #expect(line.contains("CPython: threads were faster up to 16 KiB a task and processes from 256 KiB"))
        #expect(line.contains("processes pay off only above about 10 ms of work per MiB moved"))
    }

    @Test func theVerdictConfirmsAndAProcessWinInSwiftContradicts() throws {
        let machine = LabReport.Machine(cpus: 2, os: "Linux", python: nil)
        func verdict(_ cells: [LabCell]) -> LabVerdict? {
            Verdicts.judge(Settling.judge(cells, config: Self.config, cpus: 2), config: Self.config, machine: machine).first { $0.workload == .data }
        }
        #expect(try #require(verdict(Self.swift + Self.cpython)).outcome == .confirmed)
        // Swift's processes faster than its threads at the large sizes: the claim fails.
        let odd = Self.cells(.swift, serial: (0.0001, 0.004), threads: (0.0001, 0.004), processes: (0.0005, 0.002))
        let contradicted = try #require(verdict(odd + Self.cpython))
        #expect(contradicted.outcome == .contradicted)
        #expect(contradicted.because.contains("Swift's processes"))
        // An unsettled cell it rests on (here marked by hand) leaves the verdict unsettled.
        var disturbed = Settling.judge(Self.swift, config: Self.config, cpus: 2)
        let index = try #require(disturbed.firstIndex { $0.mode == .threads && $0.inputBytes == 1 << 10 })
        disturbed[index].unsettled = "its repeats disagreed"
        let machine2 = LabReport.Machine(cpus: 2, os: "Linux", python: nil)
        let unsettled = Verdicts.judge(disturbed + Self.cpython, config: Self.config, machine: machine2).first { $0.workload == .data }
        #expect(unsettled?.outcome == .unsettled)
    }

    @Test func dataCellsAreNotBoundedBySpeedUps() {
        // At 1 KiB a task a serial run is a thread's wake-up: 3.5× over it says nothing about cores.
        var cells = Self.swift
        for index in cells.indices where cells[index].mode == .threads { cells[index].speedup = 3.5 }
        #expect(Settling.judge(cells, config: Self.config, cpus: 2).allSatisfy { $0.unsettled == nil })
    }

    @Test func theTableAndTheChartShowEverySize() {
        let cells = Self.swift + Self.cpython
        let text = TerminalReport.dataChart(cells, config: Self.config)
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines[0] == LabWorkload.data.title)
        #expect(lines[1].contains("start-up, not in the times below: swift pool start-up 20 ms, cpython pool start-up 20 ms"))
        #expect(lines.contains { $0.hasPrefix("bytes a task") && $0.contains("1 KiB") && $0.contains("4 MiB") })
        #expect(lines.contains { $0.hasPrefix("faster in CPython") && $0.contains("threads") && $0.contains("processes") })
        let svg = HTMLReport.dataSVG(cells, config: Self.config)
        #expect(svg.components(separatedBy: "class=\"curve\"").count == 5)  // threads and processes, two sources
        #expect(svg.components(separatedBy: "<circle").count == 21)
        #expect(svg.contains("stroke-dasharray=\"6 4\""))
        #expect(LabFormat.bytes(1 << 10) == "1 KiB" && LabFormat.bytes(4 << 20) == "4 MiB" && LabFormat.bytes(1_500) == "1.5 KiB" && LabFormat.bytes(12) == "12 B")
    }

    @Test func theTransformTouchesEveryStridethByte() {
        let block = [UInt8](repeating: 1, count: 20)
        let out = DataJob.transform(block, stride: 8)
        #expect(out.count == 20)
        #expect(out.indices.filter { out[$0] != block[$0] } == [0, 8, 16])
        #expect(DataJob.transform([], stride: 8) == [])
    }
}
