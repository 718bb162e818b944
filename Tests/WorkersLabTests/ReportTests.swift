import Foundation
import Testing
@testable import WorkersLab

/// Cells as a run would produce them, with the numbers chosen by each test.
func cells(ioThreads: Double = 7.9, ioAsync: Double = 7.8, cpuThreads: Double = 1.95, cpuGIL: Double = 1.0,
           cpuProcesses: Double = 1.9, probeGIL: Double = 5.3, python: (threads: Double, processes: Double)? = nil) -> [LabCell] {
    func cell(_ workload: LabWorkload, _ mode: String, _ speedup: Double, workers: Int = 2, source: LabSource = .swift, probe: Double? = nil) -> LabCell {
        LabCell(workload: workload, mode: mode, label: mode, workers: workers, wallSeconds: 1 / speedup, speedup: speedup,
                cpuPerWall: 1, source: source, probeMedianMs: probe,
                spans: [LabSpan(lane: 0, task: 0, start: 0, end: 1 / speedup, state: .running)])
    }
    var cells = [
        cell(.ioSleep, "serial", 1, workers: 1), cell(.ioSleep, "async-1", ioAsync, workers: 1), cell(.ioSleep, "threads", ioThreads, workers: 8),
        cell(.cpu, "serial", 1, workers: 1), cell(.cpu, "async-1", 1, workers: 1), cell(.cpu, "threads", cpuThreads),
        cell(.cpu, "threads-gil", cpuGIL), cell(.cpu, "processes", cpuProcesses),
        cell(.mixed, "serial", 1, workers: 1, probe: 0.08), cell(.mixed, "threads-gil", 0.2, probe: probeGIL),
        cell(.mixed, "processes", 1, probe: 0.09),
    ]
    if let python {
        cells += [
            cell(.ioSleep, "cpython-threads", 7.7, workers: 8, source: .cpython),
            cell(.cpu, "cpython-threads", python.threads, source: .cpython),
            cell(.cpu, "cpython-processes", python.processes, source: .cpython),
        ]
    }
    return cells
}

let config = LabReport.Config(quick: true, workers: 2, ioTasks: 8, ioSleepMs: 50, netLatencyMs: 25, cpuTasks: 4, cpuTaskMs: 150, switchIntervalMs: 5, probeCount: 30)

@Suite struct ConclusionTests {
    @Test func sentencesCarryTheMeasuredNumbers() {
        let lines = Conclusions.draw(cells(ioThreads: 7.3, cpuGIL: 1.02, cpuProcesses: 1.87, probeGIL: 5.4), config: config)
        let text = lines.joined(separator: "\n")
        #expect(text.contains("7.3×"))
        #expect(text.contains("1.02×"))
        #expect(text.contains("1.87×"))
        #expect(text.contains("5.4 ms"))
        #expect(text.contains("the convoy effect"))
        #expect(text.contains("So, under a GIL"))
    }

    @Test func verdictsChangeWhenTheNumbersDo() {
        let good = Conclusions.draw(cells(), config: config).joined(separator: "\n")
        let odd = Conclusions.draw(cells(cpuGIL: 1.8, probeGIL: 40), config: config).joined(separator: "\n")
        #expect(good.contains("threads do not speed up CPU-bound work under a GIL"))
        #expect(!odd.contains("threads do not speed up CPU-bound work under a GIL"))
        #expect(odd.contains("not the 1.0× a GIL should allow"))
        #expect(!odd.contains("the convoy effect"))
        #expect(odd.contains("does not bear out"))
    }

    @Test func slowParallelCPythonIsExplainedByTheNumbers() {
        var all = cells(python: (threads: 1.0, processes: 1.3))
        for index in all.indices where all[index].mode == "cpython-processes" { all[index].cpuPerWall = 2.0 }
        for index in all.indices where all[index].mode == "processes" { all[index].cpuPerWall = 1.95 }
        let text = Conclusions.draw(all, config: config).joined(separator: "\n")
        #expect(text.contains("CPython's loop ran slower with both CPUs busy (65 %"))
        // A superlinear speed-up means a slow serial run, which that sentence does not explain.
        for index in all.indices where all[index].mode == "cpython-processes" { all[index].speedup = 2.2; all[index].cpuPerWall = 1.7 }
        #expect(!Conclusions.draw(all, config: config).joined().contains("loop ran slower"))
    }

    @Test func cpythonIsComparedWithTheSimulation() {
        let agree = Conclusions.draw(cells(python: (threads: 0.97, processes: 1.8)), config: config).joined()
        #expect(agree.contains("CPython agrees"))
        let differ = Conclusions.draw(cells(python: (threads: 1.6, processes: 1.8)), config: config).joined()
        #expect(differ.contains("CPython differs by more than 15 %"))
    }
}

@Suite struct RendererTests {
    @Test func theHTMLReportIsSelfContainedWithATimelinePerCell() {
        var all = cells()
        all[0].label = "<script>alert(1)</script>"
        let report = LabReport(machine: .init(cpus: 2, os: "Linux", python: nil), config: config, cells: all, conclusions: ["a & b"])
        let html = HTMLReport.render(report)
        #expect(html.hasPrefix("<!DOCTYPE html>") || html.hasPrefix("<!doctype html>"))
        #expect(!html.contains("<script>alert"))
        #expect(html.contains("&lt;script&gt;"))
        #expect(html.contains("a &amp; b"))
        #expect(html.components(separatedBy: "<svg").count - 1 >= all.count)
        #expect(!html.contains("http://") || html.contains("xmlns=\"http://www.w3.org/2000/svg\""))
        #expect(!html.contains("https://"))
    }

    @Test func theTerminalGanttDrawsEachLane() {
        let cell = LabCell(workload: .cpu, mode: "threads-gil", label: "GIL", workers: 2, wallSeconds: 1, speedup: 1, cpuPerWall: 1, source: .swift,
                           spans: [LabSpan(lane: 0, task: 0, start: 0, end: 0.5, state: .running),
                                   LabSpan(lane: 1, task: 1, start: 0, end: 0.5, state: .gilWait),
                                   LabSpan(lane: 1, task: 1, start: 0.5, end: 1, state: .running)])
        let text = TerminalReport.gantt(cell, width: 20, timeScale: 1)
        #expect(text.contains("█"))
        #expect(text.contains("░"))
        #expect(text.split(separator: "\n").filter { $0.contains("│") }.count == 2)
    }
}

@Suite struct CommandProfileTests {
    @Test func waitingCommandsAreIOBoundAndGetThreads() {
        let profile = CommandProfile.classify(command: ["sleep", "1"], exitStatus: 0, wallSeconds: 1, userSeconds: 0.01, systemSeconds: 0.01, cpus: 2)
        #expect(profile.kind == .ioBound)
        #expect(profile.use == "threads")
        #expect(profile.workers == 64)  // 2 CPUs ÷ 0.02, capped
        #expect(profile.advice.joined().contains("waited 98 %"))
    }

    @Test func computingCommandsAreCPUBoundAndGetAProcessPerCPU() {
        let profile = CommandProfile.classify(command: ["gzip"], exitStatus: 0, wallSeconds: 2, userSeconds: 1.9, systemSeconds: 0.05, cpus: 4)
        #expect(profile.kind == .cpuBound)
        #expect(profile.use == "processes")
        #expect(profile.workers == 4)
    }

    @Test func parallelAndMixedCommands() {
        let parallel = CommandProfile.classify(command: ["make"], exitStatus: 0, wallSeconds: 1, userSeconds: 3.8, systemSeconds: 0.2, cpus: 8)
        #expect(parallel.kind == .parallel)
        #expect(parallel.workers == 2)
        let mixed = CommandProfile.classify(command: ["x"], exitStatus: 0, wallSeconds: 1, userSeconds: 0.5, systemSeconds: 0, cpus: 2)
        #expect(mixed.kind == .mixed)
    }

    @Test func anUnknownCommandIsAnError() {
        #expect(throws: LabError.self) { try CommandProfile.measure(["no-such-command-workers-test"], cpus: 1) }
    }
}
