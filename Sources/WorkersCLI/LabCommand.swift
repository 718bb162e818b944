#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Foundation
import Workers
import WorkersLab

/// `workers lab`: the main job — concurrency vs parallelism, threads vs processes and the GIL,
/// measured on this machine and drawn.
struct LabCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lab",
        abstract: "Measure threads vs processes vs a GIL on this machine, with CPython side by side.",
        discussion: """
            Runs I/O-bound work (sleeps, and requests to a loopback server), CPU-bound work (a \
            deterministic kernel whose checksum is printed) and a mixed workload (how late a 1 ms \
            sleep wakes while CPU work runs) serially, as async tasks on one thread, on a \
            ThreadPool, on a ThreadPool under a simulated GIL (CPython's algorithm, a real lock), \
            and on a ProcessPool — and, when python3 is found, the same in CPython. Prints a table \
            per workload, timelines, and conclusions computed from the numbers.
            """
    )

    enum Timelines: String, ExpressibleByArgument, CaseIterable {
        case none, some, all
    }

    @Flag(name: .long, help: "Smaller sizes: under 20 s instead of about 45 s on 2 cores.")
    var quick = false

    @Option(name: .long, help: "Workers for the CPU-bound modes (default: the CPUs this process may use).")
    var workers: Int?

    @Option(name: .long, help: "I/O tasks, and threads in the I/O thread modes (default 8).")
    var ioTasks: Int?

    @Option(name: .long, help: "How long each I/O task sleeps, in ms (default 60; --quick 30).")
    var ioSleepMs: Double?

    @Option(name: .long, help: "The loopback server's latency, in ms (default 50; --quick 25).")
    var netLatencyMs: Double?

    @Option(name: .long, help: "CPU-bound tasks (default: twice the workers).")
    var cpuTasks: Int?

    @Option(name: .long, help: "How long each CPU task takes serially, in ms (default 200; --quick 80).")
    var cpuTaskMs: Double?

    @Option(name: .long, help: "The simulated GIL's switch interval, in ms (CPython's default: 5).")
    var switchIntervalMs: Double?

    @Option(name: .long, help: "How many 1 ms sleeps the mixed workload's probe makes (default 60; --quick 20).")
    var probeCount: Int?

    @Option(name: .long, help: "Rounds of every mode, interleaved; each speed-up is their median, shown with its range (default 3).")
    var rounds: Int?

    @Option(name: .long, help: "Only these workloads, comma-separated: io-sleep, io-net, cpu, mixed, cpu-scaling, io-scaling, data, convoy.")
    var only: String?

    @Option(name: .long, help: "The python3 to compare with (default: python3 on PATH).")
    var python: String?

    @Flag(name: .long, help: "Do not run CPython.")
    var noPython = false

    @Option(name: .long, help: "Write a self-contained HTML report with SVG timelines to this file.")
    var report: String?

    @Option(name: .long, help: "Write each timeline as an SVG file into this directory.")
    var svgDir: String?

    @Option(name: .long, help: "Write every cell as JSON to this file ('-' for standard output).")
    var json: String?

    @Option(name: .long, help: "Timelines in the terminal: none, some or all (default some).")
    var timelines: Timelines = .some

    func validate() throws {
        if let workers, workers < 1 { throw ValidationError("--workers must be at least 1 (got \(workers))") }
        if let ioTasks, ioTasks < 1 || ioTasks > 512 { throw ValidationError("--io-tasks must be 1…512 (got \(ioTasks))") }
        if let cpuTasks, cpuTasks < 1 { throw ValidationError("--cpu-tasks must be at least 1 (got \(cpuTasks))") }
        if let probeCount, probeCount < 1 { throw ValidationError("--probe-count must be at least 1 (got \(probeCount))") }
        if let rounds, !(1...20).contains(rounds) { throw ValidationError("--rounds must be 1…20 (got \(rounds))") }
        for (name, value) in [("--io-sleep-ms", ioSleepMs), ("--net-latency-ms", netLatencyMs), ("--cpu-task-ms", cpuTaskMs), ("--switch-interval-ms", switchIntervalMs)] {
            if let value, !(value > 0 && value <= 60_000) { throw ValidationError("\(name) must be more than 0 and at most 60000 (got \(value))") }
        }
        _ = try selectedWorkloads()
        if let python, access(python, X_OK) != 0 { throw ValidationError("--python \(python) is not an executable file") }
    }

    private func selectedWorkloads() throws -> [LabWorkload] {
        guard let only else { return LabWorkload.allCases }
        return try only.split(separator: ",").map { name in
            guard let workload = LabWorkload(rawValue: name.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("--only: unknown workload '\(name)' (\(LabWorkload.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            return workload
        }
    }

    func run() async throws {
        var config = Lab.defaultConfig(quick: quick, workers: workers ?? cpuCount)
        if let ioTasks { config.ioTasks = ioTasks }
        if let ioSleepMs { config.ioSleepMs = ioSleepMs }
        if let netLatencyMs { config.netLatencyMs = netLatencyMs }
        if let cpuTasks { config.cpuTasks = cpuTasks }
        if let cpuTaskMs { config.cpuTaskMs = cpuTaskMs }
        if let switchIntervalMs { config.switchIntervalMs = switchIntervalMs }
        if let probeCount { config.probeCount = probeCount }
        if let rounds { config.rounds = rounds }
        let workloads = try selectedWorkloads()
        let pythonPath = noPython ? nil : (python ?? Lab.findPython())

        let progress = ProgressLine(total: progressSteps(workloads, python: pythonPath != nil, config: config))
        let lab = Lab(config: config, workloads: workloads, python: pythonPath, progress: { progress.step($0) })
        let result = try await lab.run()
        progress.finish()

        let toStdout = json == "-"
        if !toStdout { print(text(result)) }
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let data = try encoder.encode(result)
            if toStdout {
                FileHandle.standardOutput.write(data)
                FileHandle.standardOutput.write(Data("\n".utf8))
            } else {
                try write(data, to: json, what: "--json")
            }
        }
        if let report {
            try write(Data(HTMLReport.render(result).utf8), to: report, what: "--report")
            if !toStdout { print("report: \(report)") }
        }
        if let svgDir {
            try FileManager.default.createDirectory(atPath: svgDir, withIntermediateDirectories: true)
            for workload in workloads {
                let cells = result.cells.filter { $0.workload == workload && !($0.spans ?? []).isEmpty }
                let scale = timeScale(cells)
                for cell in cells {
                    let path = "\(svgDir)/\(workload.rawValue)-\(cell.mode.rawValue).svg"
                    try write(Data(HTMLReport.timelineSVG(cell, timeScale: scale).utf8), to: path, what: "--svg-dir")
                }
            }
        }
    }

    private func write(_ data: Data, to path: String, what: String) throws {
        do {
            try data.write(to: URL(fileURLWithPath: path))
        } catch {
            throw ValidationError("\(what) \(path): \(error.localizedDescription)")
        }
    }

    /// The progress lines a run prints: calibrating, then every round's cells (and CPython's
    /// line), then the cells of the workloads that run once (a scaling curve's serial runs before
    /// and after it and three modes at each width; the data workload's pool and each size; the
    /// convoy's two modes at each width).
    private func progressSteps(_ workloads: [LabWorkload], python: Bool, config: LabReport.Config) -> Int {
        let perRound = workloads.filter { !$0.runsOnce }.reduce(0) { $0 + ($1 == .mixed ? 4 : 5) } + (python ? 1 : 0)
        let once = workloads.filter(\.runsOnce).reduce(0) { steps, workload in
            steps + (workload == .data ? 1 + config.dataSizes.count
                : workload == .convoy ? 2 * config.widths(workload).count : 2 + 3 * config.widths(workload).count)
        }
        return 1 + config.rounds * perRound + once
    }

    /// The terminal report: per workload a table and timelines, then the conclusions.
    private func text(_ report: LabReport) -> String {
        let color = isatty(STDOUT_FILENO) == 1 && ProcessInfo.processInfo.environment["NO_COLOR"] == nil
        var out = "workers lab — \(report.machine.cpus) CPUs, \(report.machine.os), \(report.machine.python ?? "python3 not found")"
        if let freeThreaded = report.machine.freeThreadedPython { out += ", free-threaded CPython \(freeThreaded)" }
        let load = [report.machine.otherCPUs.map { String(format: "other programs %.2f CPUs", $0) }, report.machine.loadAverage.map { String(format: "load average %.2f", $0) }, report.machine.stealPercent.map { String(format: "CPU steal %.1f %%", $0) }]
        out += load.compactMap { $0 }.map { ", " + $0 }.joined()
        if report.config.rounds > 1 { out += "; each speed-up the median of \(report.config.rounds) interleaved rounds, with their range" }
        out += "\n"
        for workload in LabWorkload.allCases {
            let cells = report.cells.filter { $0.workload == workload }
            guard !cells.isEmpty else { continue }
            out += "\n"
            if workload.runsOnce {
                out += workload == .data ? TerminalReport.dataChart(cells, config: report.config)
                    : workload == .convoy ? TerminalReport.convoyChart(report.cells, config: report.config)
                    : TerminalReport.scalingChart(cells, workload: workload, config: report.config, cpus: report.machine.cpus)
                if let verdict = report.verdicts.first(where: { $0.workload == workload }) { out += TerminalReport.verdict(verdict, color: color) }
                continue
            }
            out += TerminalReport.table(cells, workload: workload)
            let drawn = cells.filter { shouldDraw($0) }
            if !drawn.isEmpty {
                let scale = timeScale(cells.filter { !($0.spans ?? []).isEmpty })
                for cell in drawn { out += "\n" + TerminalReport.gantt(cell, timeScale: scale, color: color) }
            }
            if let verdict = report.verdicts.first(where: { $0.workload == workload }) { out += TerminalReport.verdict(verdict, color: color) }
        }
        if timelines != .none { out += "\n" + TerminalReport.legend() }
        out += "\nConclusions\n"
        for line in report.conclusions { out += "  • \(line)\n" }
        return out
    }

    private func shouldDraw(_ cell: LabCell) -> Bool {
        guard let spans = cell.spans, !spans.isEmpty else { return false }
        switch timelines {
        case .none: return false
        case .all: return true
        case .some:
            switch cell.workload {
            case .ioSleep: return [.serial, .asyncOneThread, .threads].contains(cell.mode)
            case .ioNet: return false
            case .cpu: return [.threads, .threadsUnderSimulatedGIL, .processes].contains(cell.mode)
            case .mixed: return cell.mode == .threadsUnderSimulatedGIL
            case .cpuScaling, .ioScaling, .data, .convoy: return false
            }
        }
    }

    private func timeScale(_ cells: [LabCell]) -> Double {
        cells.map { cell in max(cell.wallSeconds, (cell.spans ?? []).map(\.end).max() ?? 0) }.max() ?? 1
    }
}

/// A progress line on stderr: redrawn in place on a terminal, one line per step otherwise.
final class ProgressLine: @unchecked Sendable {  // @unchecked: guarded by `lock`.
    private let lock = NSLock()
    private let total: Int
    private var done = 0
    private let interactive = isatty(STDERR_FILENO) == 1

    init(total: Int) { self.total = total }

    func step(_ text: String) {
        lock.lock()
        defer { lock.unlock() }
        done += 1
        let line = "[\(min(done, total))/\(total)] \(text)"
        FileHandle.standardError.write(Data((interactive ? "\r\u{1B}[K" + line : line + "\n").utf8))
    }

    func finish() {
        guard interactive else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}
