#if canImport(Glibc)
import Glibc
#endif
import Foundation
import WorkersCore

/// `workers lab`: measures, on this machine, what the course text claims — threads for I/O,
/// processes for CPU, and what a GIL does to threads — in Swift and, when python3 is here, in
/// CPython side by side.
public struct Lab: Sendable {
    /// The sizes to run with.
    public var config: LabReport.Config
    /// The workloads to run, in order.
    public var workloads: [LabWorkload]
    /// The python3 to compare with; `nil` to skip CPython.
    public var python: String?
    /// The worker program for the process modes; default this program.
    public var executable: String?
    /// Called with a short line as each cell starts.
    public var progress: @Sendable (String) -> Void

    /// The default sizes: three interleaved rounds, about 40 s in all on 2 cores with CPython;
    /// `quick` (CPU tasks of 80 ms, waits of 30 ms, 20 probe sleeps) under 20 s.
    ///
    /// The scaling curves run once (not in every round) with small tasks: CPU work at 1, 2, 4, …
    /// up to four times the CPUs (`quick`: 1, the CPUs and four times them), and sleeps at 1, 2,
    /// 4, … up to the I/O width.
    public static func defaultConfig(quick: Bool, workers: Int = cpuCount) -> LabReport.Config {
        let widest = max(1, 4 * workers)
        let ioTasks = 8
        let ioWidest = max(ioTasks, widest)
        return LabReport.Config(
            quick: quick, workers: workers, ioTasks: ioTasks, ioSleepMs: quick ? 30 : 60, netLatencyMs: quick ? 25 : 50,
            cpuTasks: 2 * workers, cpuTaskMs: quick ? 80 : 200, switchIntervalMs: 5, probeCount: quick ? 20 : 60,
            rounds: 3,
            scalingWidths: quick ? Array(Set([1, workers, widest])).sorted() : powersOfTwo(upTo: widest),
            ioScalingWidths: quick ? Array(Set([1, workers, ioWidest])).sorted() : powersOfTwo(upTo: ioWidest),
            scalingTasks: widest, scalingTaskMs: quick ? 10 : 20,
            ioScalingTasks: ioWidest, ioScalingSleepMs: 20,
            dataSizes: quick ? [1 << 10, 64 << 10, 1 << 20] : [1 << 10, 16 << 10, 256 << 10, 1 << 20, 2 << 20],
            dataTasks: max(1, workers), dataStride: 8, dataRepeats: quick ? 2 : 3,
            convoyCellMs: 600
        )
    }

    /// 1, 2, 4, … up to `limit`, and `limit` itself when it is not a power of two.
    static func powersOfTwo(upTo limit: Int) -> [Int] {
        var widths: [Int] = []
        var width = 1
        while width < limit { widths.append(width); width *= 2 }
        return widths + [max(1, limit)]
    }

    /// A lab run: the sizes, the workloads, the python3 to compare with (`nil`: none), the worker
    /// program for the process modes (default this program) and a progress callback.
    public init(
        config: LabReport.Config, workloads: [LabWorkload] = LabWorkload.allCases, python: String?,
        executable: String? = nil, progress: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.config = config
        self.workloads = workloads
        self.python = python
        self.executable = executable
        self.progress = progress
    }

    /// Runs every workload in every mode and draws the conclusions.
    ///
    /// ## Cancellation
    /// Checked between cells; a cell that has started runs to its end (its threads and processes
    /// are not interruptible), then `CancellationError` is thrown.
    public func run() async throws -> LabReport {
        var config = self.config
        let loadAtStart = MachineLoad.sample()
        progress("calibrating the CPU kernel")
        config.kernelIterations = Kernel.calibrate(seconds: config.cpuTaskMs / 1_000)
        let server = workloads.contains(.ioNet) ? try LoopbackServer(latency: config.netLatencyMs / 1_000) : nil
        defer { server?.stop() }

        let peer = python.map { CPythonPeer(python: $0) }
        // One run of python3 says both its version and whether it has the GIL.
        let mainInterpreter = python.flatMap(PythonInterpreter.probe)
        let pythonVersion = mainInterpreter.map { "Python \($0.version)" } ?? peer?.version()
        // A free-threaded CPython (no GIL): the given one, or one on PATH, run beside it on CPU work.
        let freeThreaded = python == nil ? (found: nil, lookedFor: []) : PythonInterpreter.findFreeThreaded(main: mainInterpreter)
        let separatePeer = freeThreaded.found.flatMap { $0 == mainInterpreter ? nil : CPythonPeer(python: $0.path) }
        // Every mode once a round, Swift then CPython, so the modes alternate and a slow moment
        // of the machine hits all of them; each cell is then the median of its rounds.
        var rounds: [[LabCell]] = []
        for round in 1...max(1, config.rounds) {
            let prefix = config.rounds > 1 ? "round \(round) of \(config.rounds): " : ""
            let experiments = SwiftExperiments(config: config, executable: executable, progress: { progress(prefix + $0) })
            var cells: [LabCell] = []
            // The scaling curves and the data-heavy sizes run once, in the first round (the data
            // sizes repeat within it): each point is bounded by its workers and the CPUs like
            // any cell, and rounds of every point would double the run.
            let inRound = round == 1 ? workloads : workloads.filter { !$0.runsOnce }
            for workload in inRound {
                try Task.checkCancellation()
                cells += try await experiments.run(workload, port: server?.port)
            }
            if let peer {
                progress(prefix + "CPython: the same workloads")
                do {
                    let measured = try peer.run(config: config, workloads: inRound, port: server?.port)
                    // --python pointing at a free-threaded build: its rows are the no-GIL ones.
                    cells += freeThreaded.found == mainInterpreter && mainInterpreter != nil
                        ? measured.map { $0.asFreeThreaded(version: mainInterpreter!.version) } : measured
                } catch {
                    cells += workloads.map { LabCell.missing($0, note: "CPython failed: \(error)") }
                }
            } else {
                cells += inRound.map { LabCell.missing($0, note: "python3 not found") }
            }
            let cpuWork = inRound.filter { $0 == .cpu || $0 == .cpuScaling }
            if let separatePeer, let interpreter = freeThreaded.found, !cpuWork.isEmpty {
                progress(prefix + "CPython \(interpreter.version) without the GIL: the CPU workload")
                do {
                    cells += try separatePeer.run(config: config, workloads: cpuWork, port: nil).map { $0.asFreeThreaded(version: interpreter.version) }
                } catch {
                    cells.append(LabCell.missing(.cpu, note: "free-threaded CPython failed: \(error)").asFreeThreaded(version: interpreter.version))
                }
            }
            rounds.append(cells)
        }
        var cells = Rounds.merge(rounds)
        let loadAtEnd = MachineLoad.sample()
        var machine = LabReport.Machine(
            cpus: cpuCount, os: Self.kernelName(), python: pythonVersion, loadAverage: MachineLoad.loadAverage(),
            stealPercent: MachineLoad.stealPercent(from: loadAtStart, to: loadAtEnd), otherCPUs: MachineLoad.otherCPUs(from: loadAtStart, to: loadAtEnd)
        )
        machine.freeThreadedPython = freeThreaded.found.map { "\($0.version) at \($0.path)" }
        machine.freeThreadedLookedFor = python == nil ? nil : freeThreaded.lookedFor
        cells = Settling.judge(cells, config: config, cpus: machine.cpus)
        var report = LabReport(machine: machine, config: config, cells: cells, conclusions: Conclusions.draw(cells, config: config, machine: machine),
                               verdicts: Verdicts.judge(cells, config: config, machine: machine))
        report.targets = LabTarget.targets(config: config, cpus: machine.cpus, workloads: workloads, python: peer != nil)
        return report
    }

    /// The first `python3` on PATH, or `nil`.
    public static func findPython() -> String? { executablePath("python3") }

    static func kernelName() -> String {
        var name = utsname()
        uname(&name)
        func field<T>(_ value: T) -> String {
            withUnsafeBytes(of: value) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        }
        return "\(field(name.sysname)) \(field(name.release)) \(field(name.machine))"
    }
}

extension LabCell {
    /// A placeholder for a source that did not run, saying why.
    static func missing(_ workload: LabWorkload, note: String) -> LabCell {
        LabCell(workload: workload, mode: .cpython(.serial), label: "CPython", workers: 0, wallSeconds: 0, speedup: 0, cpuPerWall: 0, source: .cpython, note: note)
    }
}
