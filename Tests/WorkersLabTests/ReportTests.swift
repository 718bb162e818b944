import Foundation
import Testing
@testable import WorkersLab

/// Cells as a run would produce them, with the numbers chosen by each test.
func cells(ioThreads: Double = 7.9, ioAsync: Double = 7.8, cpuThreads: Double = 1.95, cpuGIL: Double = 1.0,
           cpuProcesses: Double = 1.9, probeGIL: Double = 5.3, python: (threads: Double, processes: Double)? = nil) -> [LabCell] {
    func cell(_ workload: LabWorkload, _ mode: LabMode, _ speedup: Double, workers: Int = 2, source: LabSource = .swift, probe: Double? = nil) -> LabCell {
        LabCell(workload: workload, mode: mode, label: mode.rawValue, workers: workers, wallSeconds: 1 / speedup, speedup: speedup,
                cpuPerWall: 1, source: source, probeMedianMs: probe,
                spans: [LabSpan(lane: 0, task: 0, start: 0, end: 1 / speedup, state: .running)])
    }
    var cells = [
        cell(.ioSleep, .serial, 1, workers: 1), cell(.ioSleep, .asyncOneThread, ioAsync, workers: 1), cell(.ioSleep, .threads, ioThreads, workers: 8),
        cell(.cpu, .serial, 1, workers: 1), cell(.cpu, .asyncOneThread, 1, workers: 1), cell(.cpu, .threads, cpuThreads),
        cell(.cpu, .threadsUnderSimulatedGIL, cpuGIL), cell(.cpu, .processes, cpuProcesses),
        cell(.mixed, .serial, 1, workers: 1, probe: 0.08), cell(.mixed, .threadsUnderSimulatedGIL, 0.2, probe: probeGIL),
        cell(.mixed, .processes, 1, probe: 0.09),
    ]
    if let python {
        cells += [
            cell(.ioSleep, .cpython(.threads), 7.7, workers: 8, source: .cpython),
            cell(.cpu, .cpython(.threads), python.threads, source: .cpython),
            cell(.cpu, .cpython(.processes), python.processes, source: .cpython),
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
        for index in all.indices where all[index].mode == .cpython(.processes) { all[index].cpuPerWall = 2.0 }
        for index in all.indices where all[index].mode == .processes { all[index].cpuPerWall = 1.95 }
        let text = Conclusions.draw(all, config: config).joined(separator: "\n")
        #expect(text.contains("CPython's loop ran slower with both CPUs busy (65 %"))
        // A superlinear speed-up means a slow serial run, which that sentence does not explain.
        for index in all.indices where all[index].mode == .cpython(.processes) { all[index].speedup = 2.2; all[index].cpuPerWall = 1.7 }
        #expect(!Conclusions.draw(all, config: config).joined().contains("loop ran slower"))
    }

    @Test func cpythonIsComparedWithTheSimulation() {
        let agree = Conclusions.draw(cells(python: (threads: 0.97, processes: 1.8)), config: config).joined()
        #expect(agree.contains("CPython agrees"))
        let differ = Conclusions.draw(cells(python: (threads: 1.6, processes: 1.8)), config: config).joined()
        #expect(differ.contains("CPython differs by more than 15 %"))
    }
}

/// A speed-up that breaks a physical bound is a disturbed run: it is marked, and no lesson is
/// drawn from it (issue 14's false lesson: "CPython asyncio (1 thread, no parallelism) 1.3×").
@Suite struct SettlingTests {
    let machine = LabReport.Machine(cpus: 2, os: "Linux", python: nil, loadAverage: 3.4, stealPercent: 12)

    func judged(_ all: [LabCell]) -> [LabCell] { Settling.judge(all, config: config, cpus: 2) }

    func cell(_ all: [LabCell], _ workload: LabWorkload, _ mode: LabMode) -> LabCell? {
        all.first { $0.workload == workload && $0.mode == mode }
    }

    @Test func aQuietRunIsSettledThroughout() {
        let all = judged(cells(python: (threads: 1.0, processes: 1.8)))
        #expect(all.allSatisfy { $0.unsettled == nil }, "\(all.filter { $0.unsettled != nil }.map(\.mode))")
        let text = Conclusions.draw(all, config: config, machine: machine).joined(separator: "\n")
        #expect(!text.contains("unsettled"))
        #expect(text.contains("So, under a GIL"))
    }

    @Test func oneAtATimeModesAboveOneAreUnsettledAndTeachNothing() {
        var all = cells(python: (threads: 1.0, processes: 1.8))
        for index in all.indices where all[index].workload == .cpu && all[index].mode == .asyncOneThread { all[index].speedup = 1.3 }
        all.append(LabCell(workload: .cpu, mode: .cpython(.asyncio), label: "CPython asyncio (1 thread, no parallelism)", workers: 1,
                           wallSeconds: 0.588, speedup: 1.34, cpuPerWall: 1, source: .cpython))
        all = judged(all)
        #expect(cell(all, .cpu, .asyncOneThread)?.unsettled?.contains("one task at a time") == true)
        #expect(cell(all, .cpu, .cpython(.asyncio))?.unsettled != nil)
        let text = Conclusions.draw(all, config: config, machine: machine).joined(separator: "\n")
        #expect(!text.contains("switching gains nothing"))
        #expect(text.contains("Async tasks on one thread, CPU-bound: unsettled"))
        #expect(text.contains("2 cells are unsettled"))
        #expect(text.contains("load average 3.4 on 2 CPUs, CPU steal 12 %"))
        // 1.12× is within the bound: a settled cell, and its lesson is drawn.
        var near = cells()
        for index in near.indices where near[index].workload == .cpu && near[index].mode == .asyncOneThread { near[index].speedup = 1.12 }
        #expect(Conclusions.draw(judged(near), config: config, machine: machine).joined().contains("switching gains nothing"))
    }

    @Test func parallelModesAboveTheirWorkersOrCPUsAreUnsettled() {
        let all = judged(cells(ioThreads: 9.5, cpuProcesses: 2.6))
        #expect(cell(all, .ioSleep, .threads)?.unsettled?.contains("from 8 at a time") == true)
        #expect(cell(all, .cpu, .processes)?.unsettled?.contains("from 2 at a time") == true)
        let text = Conclusions.draw(all, config: config, machine: machine).joined(separator: "\n")
        #expect(!text.contains("every core works"))
        #expect(!text.contains("So, under a GIL"))
        #expect(text.contains("cannot settle the rule of thumb"))
        #expect(!text.contains("concurrency is one worker switching"))
    }

    @Test func tablesMarkUnsettledCellsAndSayWhy() {
        let all = judged(cells(cpuProcesses: 2.6))
        let text = TerminalReport.table(all, workload: .cpu)
        #expect(text.contains("2.6× ?"))
        #expect(text.contains("? unsettled: processes — 2.6× from 2 at a time"))
        let html = HTMLReport.render(LabReport(machine: machine, config: config, cells: all, conclusions: []))
        #expect(html.contains("class=\"num unsettled\""))
        #expect(html.contains("is unsettled: 2.6× from 2 at a time"))
        #expect(html.contains("load average 3.40"))
    }

    @Test func stealIsTheHypervisorsShareOfTheInterval() {
        let start = MachineLoad.Sample(steal: 100, total: 1_000)
        let end = MachineLoad.Sample(steal: 150, total: 1_500)
        #expect(MachineLoad.stealPercent(from: start, to: end) == 10)
        #expect(MachineLoad.stealPercent(from: end, to: end) == nil)
        #expect(MachineLoad.sample() != nil)  // Linux: /proc/stat
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
        let cell = LabCell(workload: .cpu, mode: .threadsUnderSimulatedGIL, label: "GIL", workers: 2, wallSeconds: 1, speedup: 1, cpuPerWall: 1, source: .swift,
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

    @Test func aWaitForACoreIsNeitherComputingNorIO() {
        // A loop that got a third of a core on a busy machine: 0.3 s CPU in 1 s, 0.7 s of it queued.
        let busy = CommandProfile.classify(command: ["sh"], exitStatus: 0, wallSeconds: 1, userSeconds: 0.3, systemSeconds: 0,
                                           cpus: 2, runQueueSeconds: 0.7)
        #expect(busy.cpuPerWall == 0.3)
        #expect(busy.computeRatio > 0.99)
        #expect(busy.kind == .cpuBound)
        #expect(busy.advice.joined().contains("waited 0.700 s (70 %"))
        // Without the queue it would have looked I/O-bound; a wait longer than the wall is clamped.
        #expect(CommandProfile.classify(command: ["sh"], exitStatus: 0, wallSeconds: 1, userSeconds: 0.3, systemSeconds: 0, cpus: 2).kind == .ioBound)
        #expect(CommandProfile.classify(command: ["sh"], exitStatus: 0, wallSeconds: 1, userSeconds: 0.3, systemSeconds: 0, cpus: 2,
                                        runQueueSeconds: 5).runQueueSeconds == 1)
    }

    @Test func schedstatsSecondFieldIsTheRunQueueWait() {
        #expect(CommandProfile.parseRunQueueNanoseconds("207619115 210674733 53\n") == 210_674_733)
        #expect(CommandProfile.parseRunQueueNanoseconds("12\n") == nil)
        #expect(CommandProfile.parseRunQueueNanoseconds("") == nil)
    }

    @Test func measuringReadsTheRunQueueAndTheExitStatus() throws {
        let profile = try CommandProfile.measure(["sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; exit 4"], cpus: 2)
        #expect(profile.exitStatus == 4)
        #expect(profile.userSeconds + profile.systemSeconds > 0)
        // The wait is read where the kernel keeps it: this process's own schedstat parses.
        #expect(CommandProfile.runQueueNanoseconds(of: getpid()) != nil)
        let killed = try CommandProfile.measure(["sh", "-c", "kill -9 $$"], cpus: 2)
        #expect(killed.exitStatus == 128 + 9)
    }

    @Test func anUnknownCommandIsAnError() {
        #expect(throws: LabError.self) { try CommandProfile.measure(["no-such-command-workers-test"], cpus: 1) }
    }
}

/// Rounds: every cell is the median of its rounds, with the lowest and highest beside it; rounds
/// too far apart make it unsettled, and the conclusions then draw nothing from it.
@Suite struct RoundsTests {
    func round(cpuThreads: Double, cpuProcesses: Double) -> [LabCell] {
        cells(cpuThreads: cpuThreads, cpuProcesses: cpuProcesses, python: (threads: 1.0, processes: 1.8))
    }

    func cell(_ all: [LabCell], _ workload: LabWorkload, _ mode: LabMode) -> LabCell? {
        all.first { $0.workload == workload && $0.mode == mode }
    }

    @Test func eachCellIsTheMedianOfItsRounds() throws {
        let merged = Rounds.merge([round(cpuThreads: 1.9, cpuProcesses: 1.7), round(cpuThreads: 1.5, cpuProcesses: 1.9),
                                   round(cpuThreads: 1.95, cpuProcesses: 1.8)])
        let threads = try #require(cell(merged, .cpu, .threads))
        #expect(threads.speedup == 1.9 && threads.speedupMin == 1.5 && threads.speedupMax == 1.95 && threads.rounds == 3)
        #expect(cell(merged, .cpu, .processes)?.speedup == 1.8)
        // The first round's timeline is kept, in the first round's order.
        #expect(merged.map(\.mode) == round(cpuThreads: 1, cpuProcesses: 1).map(\.mode))
        #expect(threads.spans?.isEmpty == false)
        #expect(LabFormat.spread(threads) == "1.5–1.9" || LabFormat.spread(threads) == "1.5–2.0")
        #expect(Rounds.median([3, 1, 2, 10]) == 2.5)
    }

    @Test func roundsFarApartAreUnsettledAndTeachNothing() throws {
        let merged = Rounds.merge([round(cpuThreads: 1.9, cpuProcesses: 1.8), round(cpuThreads: 1.0, cpuProcesses: 1.8),
                                   round(cpuThreads: 1.4, cpuProcesses: 1.8)])
        let judged = Settling.judge(merged, config: config, cpus: 2)
        let threads = try #require(cell(judged, .cpu, .threads))
        #expect(threads.unsettled?.contains("its rounds gave 1.9×, 1×, 1.4×") == true, "\(threads.unsettled ?? "settled")")
        #expect(cell(judged, .cpu, .processes)?.unsettled == nil)
        let machine = LabReport.Machine(cpus: 2, os: "Linux", python: nil, loadAverage: 1.0, stealPercent: 0)
        let lines = Conclusions.draw(judged, config: config, machine: machine)
        let cpu = try #require(lines.first { $0.hasPrefix("CPU-bound (") })
        #expect(cpu.contains("unsettled") && !cpu.contains("Swift threads, which have no GIL, ran"))
    }

    /// One disturbed round of three is outvoted: the median ignores it, and so does the spread.
    @Test func oneRoundOffIsOutvoted() throws {
        let merged = Rounds.merge([round(cpuThreads: 1.9, cpuProcesses: 1.8), round(cpuThreads: 1.0, cpuProcesses: 1.8),
                                   round(cpuThreads: 1.95, cpuProcesses: 1.8)])
        let threads = try #require(cell(Settling.judge(merged, config: config, cpus: 2), .cpu, .threads))
        #expect(threads.unsettled == nil && threads.speedup == 1.9 && threads.speedupMin == 1.0)
        #expect(Settling.agreeing([1.9, 1.0, 1.95]) == [1.9, 1.95])
    }

    @Test func theJSONCarriesTheSpread() throws {
        let merged = Rounds.merge([round(cpuThreads: 1.9, cpuProcesses: 1.8), round(cpuThreads: 1.7, cpuProcesses: 1.8)])
        let json = try String(decoding: JSONEncoder().encode(try #require(cell(merged, .cpu, .threads))), as: UTF8.self)
        #expect(json.contains("\"speedup_min\":1.7") && json.contains("\"speedup_max\":1.9") && json.contains("\"rounds\":2"))
        #expect(json.contains("\"speedup_rounds\":[1.9,1.7]"))
    }
}
