#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization
import WorkersCore
import WorkersProcesses
import WorkersThreads

/// Runs the lab's workloads in Swift, one cell per workload × mode.
struct SwiftExperiments {
    let config: LabReport.Config
    /// The worker program for the process modes (it must call `runIfWorker(jobs: LabJobs.all)`).
    let executable: String?
    let progress: @Sendable (String) -> Void
    /// Threads in the I/O thread modes; `nil`: one per task, all at once.
    var ioThreads: Int? = nil

    /// The Swift modes, in the order they run and print.
    static let modes: [LabMode] = [.serial, .asyncOneThread, .threads, .threadsUnderSimulatedGIL, .processes]

    func run(_ workload: LabWorkload, port: UInt16?) async throws -> [LabCell] {
        if workload.isScaling { return try await scaling(workload) }
        if workload == .data { return try await data() }
        if workload == .convoy { return try await convoy() }
        var cells: [LabCell] = []
        for mode in Self.modes {
            if workload == .mixed, mode == .asyncOneThread { continue }
            progress("\(workload.rawValue) · \(mode)")
            var cell = try await measure(workload, mode: mode, port: port)
            if let serial = cells.first(where: { $0.mode == .serial }), cell.wallSeconds > 0 {
                cell.speedup = serial.wallSeconds / cell.wallSeconds
            }
            cells.append(cell)
        }
        return cells
    }

    // MARK: One cell

    func measure(_ workload: LabWorkload, mode: LabMode, port: UInt16?) async throws -> LabCell {
        let recorder = TimelineRecorder()
        let cpuBefore = cpuSeconds()
        let start = monotonicSeconds()
        let outcome: Outcome
        switch workload {
        case .ioSleep: outcome = try await ioSleep(mode: mode, recorder: recorder)
        case .ioNet:
            guard let port else { throw LabError("io-net needs the loopback server") }
            outcome = try await ioNet(mode: mode, port: port, recorder: recorder)
        case .cpu: outcome = try await cpu(mode: mode, recorder: recorder)
        case .mixed: outcome = try await mixed(mode: mode, recorder: recorder)
        case .convoy: outcome = try await mixed(mode: mode, recorder: recorder, cpuThreads: max(1, config.workers), curve: true)
        case .cpuScaling, .ioScaling, .data: throw LabError("\(workload.rawValue) is measured point by point")
        }
        let elapsed = monotonicSeconds() - start
        let cpu = cpuSeconds() - cpuBefore
        // The mixed workload's wall time is the probe's (as in the CPython peer); its CPU ÷ wall
        // covers the whole cell, busy neighbour included.
        let wall = outcome.probeSeconds ?? elapsed
        let probe = outcome.lateness.map { $0.sorted() }
        return LabCell(
            workload: workload, mode: mode, label: label(mode, workload: workload, workers: outcome.workers),
            workers: outcome.workers, wallSeconds: wall, speedup: 1, cpuPerWall: elapsed > 0 ? cpu / elapsed : 0,
            checksum: outcome.checksum.map { "0x" + String($0, radix: 16) }, source: .swift,
            probeMedianMs: probe.map { percentile($0, 0.5) * 1_000 }, probeP90Ms: probe.map { percentile($0, 0.9) * 1_000 },
            spans: recorder.recorded, note: outcome.note
        )
    }

    struct Outcome {
        var workers: Int
        var checksum: UInt64? = nil
        var lateness: [Double]? = nil
        var probeSeconds: Double? = nil
        var note: String? = nil
    }

    private func label(_ mode: LabMode, workload: LabWorkload, workers: Int) -> String {
        switch mode {
        case .serial: "serial (1 thread)"
        case .asyncOneThread: "async tasks on 1 thread"
        case .threads where workload == .convoy: "Swift threads (no GIL)"
        case .threadsUnderSimulatedGIL where workload == .convoy: "threads + simulated GIL"
        case .threads: workload == .mixed ? "Swift threads (probe + 1 CPU thread)" : "ThreadPool(\(workers))"
        case .threadsUnderSimulatedGIL: workload == .mixed ? "threads + simulated GIL (probe + 1 CPU thread)" : "ThreadPool(\(workers)) + simulated GIL"
        case .processes: workload == .mixed ? "probe + 1 CPU process" : "ProcessPool(\(workers))"
        default: mode.rawValue
        }
    }

    // MARK: I/O: sleeps

    private func ioSleep(mode: LabMode, recorder: TimelineRecorder) async throws -> Outcome {
        let tasks = config.ioTasks
        let seconds = config.ioSleepMs / 1_000
        switch mode {
        case .serial:
            try await onOneThread {
                for task in 0..<tasks { recorder.span(thread: 0, task: task, .waiting) { blockingSleep(seconds: seconds) } }
            }
            return Outcome(workers: 1)
        case .asyncOneThread:
            let pool = ThreadPool(threads: 1)
            await withTaskExecutorPreference(pool) {
                await withTaskGroup(of: Void.self) { group in
                    for task in 0..<tasks {
                        group.addTask {
                            let begin = recorder.now()
                            try? await Task.sleep(for: .nanoseconds(Int64(seconds * 1e9)))
                            recorder.record(thread: task, task: task, from: begin, to: recorder.now(), state: .waiting)
                        }
                    }
                }
            }
            await pool.shutdown()
            return Outcome(workers: 1, note: "one thread; each task a row")
        case .threads, .threadsUnderSimulatedGIL:
            let threads = ioThreads ?? tasks
            try await blockingIOOnThreads(tasks, threads: threads, underGIL: mode == .threadsUnderSimulatedGIL, recorder: recorder) { blockingSleep(seconds: seconds) }
            return Outcome(workers: threads)
        default:
            try await waitsInProcesses(SleepJob.self, Array(repeating: seconds, count: tasks), recorder: recorder)
            return Outcome(workers: config.workers)
        }
    }

    // MARK: I/O: requests to the loopback server

    private func ioNet(mode: LabMode, port: UInt16, recorder: TimelineRecorder) async throws -> Outcome {
        let tasks = config.ioTasks
        switch mode {
        case .serial:
            try await onOneThread {
                for task in 0..<tasks { try recorder.span(thread: 0, task: task, .waiting) { try blockingRequest(port: port) } }
            }
            return Outcome(workers: 1)
        case .asyncOneThread:
            try await onOneThread {
                let origin = monotonicSeconds() - recorder.now()
                try eventLoopRequests(port: port, count: tasks) { task, start, end in
                    recorder.record(thread: task, task: task, from: start - origin, to: end - origin, state: .waiting)
                }
            }
            return Outcome(workers: 1, note: "one thread, non-blocking sockets and poll (as asyncio); each request a row")
        case .threads, .threadsUnderSimulatedGIL:
            try await blockingIOOnThreads(tasks, threads: tasks, underGIL: mode == .threadsUnderSimulatedGIL, recorder: recorder) { try blockingRequest(port: port) }
            return Outcome(workers: tasks)
        default:
            try await waitsInProcesses(RequestJob.self, Array(repeating: port, count: tasks), recorder: recorder)
            return Outcome(workers: config.workers)
        }
    }

    /// Runs one waiting `job` per input on a `ProcessPool` of the configured workers, one input a
    /// batch, and puts the waits on the timeline by worker.
    private func waitsInProcesses<J: Job>(_ job: J.Type, _ inputs: [J.Input], recorder: TimelineRecorder) async throws where J.Output == JobTiming {
        let pool = try await ProcessPool(workers: config.workers, jobs: LabJobs.all, executable: executable)
        let timings = try await pool.map(job, inputs, chunkSize: 1)
        await pool.shutdown()
        record(timings, state: .waiting, into: recorder)
    }

    /// `tasks` blocking I/O calls on `threads` threads, all submitted at once (one thread per
    /// call when they are as many); under the simulated GIL each thread holds it to start (as
    /// Python code would), releases it for the call, and takes it back afterwards — where the
    /// convoy comes from.
    private func blockingIOOnThreads(
        _ tasks: Int, threads: Int, underGIL: Bool, recorder: TimelineRecorder, _ io: @escaping @Sendable () throws -> Void
    ) async throws {
        let gil = underGIL ? SimulatedGIL(interval: switchInterval, recorder: recorder) : nil
        let pool = ThreadPool(threads: max(1, threads))
        do {
            _ = try await eachOnItsOwnJob(tasks, on: pool) { task in
                let lane = recorder.laneForCurrentThread()
                gil?.take(lane, task: task)
                gil?.releaseForIO(lane, task: task)
                defer {
                    gil?.reacquireAfterIO(lane, task: task)
                    gil?.drop(lane, task: task)
                }
                try recorder.span(thread: lane, task: task, .waiting, io)
            }
        } catch {
            await pool.shutdown()
            throw error
        }
        await pool.shutdown()
    }

    // MARK: CPU

    private func cpu(mode: LabMode, recorder: TimelineRecorder) async throws -> Outcome {
        let tasks = config.cpuTasks
        let iterations = config.kernelIterations
        switch mode {
        case .serial:
            let checksum = try await onOneThread {
                var checksum: UInt64 = 0
                for task in 0..<tasks {
                    checksum ^= recorder.span(thread: 0, task: task, .running) { Kernel.run(seed: UInt64(task + 1), iterations: iterations) }
                }
                return checksum
            }
            return Outcome(workers: 1, checksum: checksum)
        case .asyncOneThread:
            let pool = ThreadPool(threads: 1)
            let checksum = await withTaskExecutorPreference(pool) {
                await withTaskGroup(of: UInt64.self) { group in
                    for task in 0..<tasks {
                        group.addTask {
                            recorder.span(thread: 0, task: task, .running) { Kernel.run(seed: UInt64(task + 1), iterations: iterations) }
                        }
                    }
                    return await group.reduce(0, ^)
                }
            }
            await pool.shutdown()
            return Outcome(workers: 1, checksum: checksum, note: "tasks take turns: none waits, so none overlaps")
        case .threads, .threadsUnderSimulatedGIL:
            let workers = config.workers
            let gil = mode == .threadsUnderSimulatedGIL ? SimulatedGIL(interval: switchInterval, recorder: recorder) : nil
            let pool = ThreadPool(threads: workers)
            let results = try await eachOnItsOwnJob(tasks, on: pool) { task -> UInt64 in
                let lane = recorder.laneForCurrentThread()
                guard let gil else {
                    return recorder.span(thread: lane, task: task, .running) { Kernel.run(seed: UInt64(task + 1), iterations: iterations) }
                }
                gil.take(lane, task: task)
                defer { gil.drop(lane, task: task) }
                return Kernel.run(seed: UInt64(task + 1), iterations: iterations, every: Kernel.gilCheckpointEvery) { gil.checkpoint(lane, task: task) }
            }
            await pool.shutdown()
            let note = gil.map { "\($0.switches) GIL hand-offs" }
            return Outcome(workers: workers, checksum: results.reduce(0, ^), note: note)
        default:
            let workers = config.workers
            let begin = monotonicSeconds()
            let pool = try await ProcessPool(workers: workers, jobs: LabJobs.all, executable: executable)
            let started = monotonicSeconds()
            let inputs = (0..<tasks).map { KernelJob.Input(seed: UInt64($0 + 1), iterations: iterations) }
            let outputs = try await pool.map(KernelJob.self, inputs, chunkSize: 1)
            let stopping = monotonicSeconds()
            await pool.shutdown()
            let note = String(format: "includes starting the pool (%.0f ms) and stopping it (%.0f ms)", (started - begin) * 1_000, (monotonicSeconds() - stopping) * 1_000)
            record(outputs.map(\.timing), state: .running, into: recorder)
            return Outcome(workers: workers, checksum: outputs.map(\.checksum).reduce(0, ^), note: note)
        }
    }

    // MARK: Mixed: how late a 1 ms sleep wakes while CPU work runs

    /// The convoy's curve: the probe behind 2, 4, … CPU threads (behind one is the mixed
    /// workload's), with no GIL and under the simulated one. A cell's `workers` is its CPU
    /// threads (the probe's thread besides).
    func convoy() async throws -> [LabCell] {
        var cells: [LabCell] = []
        for width in config.widths(.convoy) {
            var atWidth = config
            atWidth.workers = width
            let experiments = SwiftExperiments(config: atWidth, executable: executable, progress: progress)
            for mode in [LabMode.threads, .threadsUnderSimulatedGIL] {
                progress("convoy · \(mode) · \(width)")
                var cell = try await experiments.measure(.convoy, mode: mode, port: nil)
                cell.spans = nil
                cells.append(cell)
            }
        }
        return cells
    }

    /// The probe (``probe(count:lane:gil:recorder:)``) beside `cpuThreads` CPU-bound threads (or
    /// one CPU process), or alone. Its workers: the probe's thread and the CPU threads, or for
    /// the convoy's `curve` the CPU threads alone.
    private func mixed(mode: LabMode, recorder: TimelineRecorder, cpuThreads: Int = 1, curve: Bool = false) async throws -> Outcome {
        let probes = config.probeCount
        let iterations = Kernel.checkpointEvery * 16
        switch mode {
        case .serial:
            let result = try await onOneThread { probe(count: probes, lane: 0, gil: nil, recorder: recorder) }
            return Outcome(workers: 1, lateness: result.lateness, probeSeconds: result.seconds, note: "the probe alone")
        case .threads, .threadsUnderSimulatedGIL:
            // The convoy's curve draws no timelines: unrecorded, the hand-offs are not slowed.
            let gil = mode == .threadsUnderSimulatedGIL ? SimulatedGIL(interval: switchInterval, recorder: curve ? nil : recorder) : nil
            let stop = Event()
            let started = CountDownLatch(count: cpuThreads)
            let pool = ThreadPool(threads: cpuThreads + 1)
            async let busy: [UInt64] = eachOnItsOwnJob(cpuThreads, on: pool) { task in
                let lane = task + 1
                var checksum: UInt64 = 0
                var seed = UInt64(task + 1)
                gil?.take(lane, task: task)
                started.countDown()  // the probe starts once each busy neighbour has run
                let begin = recorder.now()
                while !stop.isSet {
                    checksum ^= Kernel.run(seed: seed, iterations: iterations, every: gil == nil ? Kernel.checkpointEvery : Kernel.gilCheckpointEvery) { gil?.checkpoint(lane, task: task) }
                    seed &+= 1
                }
                if let gil { gil.drop(lane, task: task) } else { recorder.record(thread: lane, task: task, from: begin, to: recorder.now(), state: .running) }
                return checksum
            }
            let result = try await pool.run {
                defer { stop.set() }
                started.wait()
                return probe(count: probes, lane: 0, gil: gil, recorder: recorder, budget: curve ? (config.convoyCellMs ?? 0) / 1_000 : 0)
            }
            _ = try await busy
            await pool.shutdown()
            let note = "\(result.lateness.count) sleeps; wall is the probe's time" + (gil.map { "; \($0.switches) GIL hand-offs" } ?? "")
            return Outcome(workers: curve ? cpuThreads : cpuThreads + 1, lateness: result.lateness, probeSeconds: result.seconds, note: note)
        default:
            let pool = try await ProcessPool(workers: 1, jobs: LabJobs.all, executable: executable)
            // Long enough to cover the probe (1 ms sleeps plus a little each) with room to spare.
            let burn = Double(probes) * 0.0015 + 0.05
            async let busy = pool.run(BurnForJob.self, burn)
            try await Task.sleep(for: .milliseconds(10))  // let the worker start burning
            let result = try await onOneThread { probe(count: probes, lane: 0, gil: nil, recorder: recorder) }
            let output = try await busy
            await pool.shutdown()
            record([output.timing], state: .running, into: recorder, firstLane: 1)
            return Outcome(workers: 2, lateness: result.lateness, probeSeconds: result.seconds, note: "wall is the probe's time")
        }
    }

    /// `count` sleeps of 1 ms on the calling thread; returns how late each woke (seconds), taking
    /// the GIL back after each sleep when there is one.
    ///
    /// With a positive `budget` (seconds) it stops short of `count` once that has passed, after
    /// at least ``LabThresholds/convoyMinimumSleeps``: behind several CPU threads one sleep can
    /// wait a hundred ms.
    private func probe(count: Int, lane: Int, gil: SimulatedGIL?, recorder: TimelineRecorder, budget: Double = 0) -> Probe {
        let start = monotonicSeconds()
        var lateness: [Double] = []
        lateness.reserveCapacity(count)
        gil?.take(lane, task: -1)
        for index in 0..<count {
            if budget > 0, index >= LabThresholds.convoyMinimumSleeps, monotonicSeconds() - start >= budget { break }
            let begin = monotonicSeconds()
            gil?.releaseForIO(lane, task: -1)
            recorder.span(thread: lane, task: -1, .waiting) { blockingSleep(seconds: 0.001) }
            gil?.reacquireAfterIO(lane, task: -1)
            lateness.append(max(0, monotonicSeconds() - begin - 0.001))
        }
        gil?.drop(lane, task: -1)
        return Probe(lateness: lateness, seconds: monotonicSeconds() - start)
    }

    struct Probe: Sendable {
        var lateness: [Double]
        var seconds: Double
    }

    // MARK: Helpers

    private var switchInterval: Duration { .nanoseconds(Int64(config.switchIntervalMs * 1_000_000)) }

    /// Runs blocking `body` on a thread of its own, keeping Swift's cooperative threads free.
    func onOneThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        let pool = ThreadPool(threads: 1)
        defer { Task { await pool.shutdown() } }
        return try await pool.run { try body() }
    }

    /// Submits each task as its own job, all at once — as `ThreadPoolExecutor.submit` does — so
    /// every thread the pool has starts at once (`map` grows its loops step by step instead, which
    /// on a busy machine delays the later ones); results in task order.
    func eachOnItsOwnJob<T: Sendable>(
        _ tasks: Int, on pool: ThreadPool, _ body: @escaping @Sendable (Int) throws -> T
    ) async throws -> [T] {
        try await withThrowingTaskGroup(of: (Int, T).self) { group in
            for task in 0..<tasks { group.addTask { (task, try await pool.run { try body(task) }) } }
            var results: [(Int, T)] = []
            for try await result in group { results.append(result) }
            return results.sorted { $0.0 < $1.0 }.map(\.1)
        }
    }

    /// Puts process timings on lanes by worker pid, in order of first appearance.
    private func record(_ timings: [JobTiming], state: LabSpanState, into recorder: TimelineRecorder, firstLane: Int = 0) {
        for (task, timing) in timings.enumerated() {
            recorder.record(
                thread: firstLane + recorder.lane(for: timing.pid), task: task,
                from: recorder.seconds(at: timing.start), to: recorder.seconds(at: timing.end), state: state
            )
        }
    }
}

/// User plus system CPU seconds of this process and its reaped children.
func cpuSeconds() -> Double {
    var own = rusage()
    var children = rusage()
    getrusage(RUSAGE_SELF.rawValue, &own)
    getrusage(RUSAGE_CHILDREN.rawValue, &children)
    func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
    return seconds(own.ru_utime) + seconds(own.ru_stime) + seconds(children.ru_utime) + seconds(children.ru_stime)
}

/// The `fraction` percentile of sorted `values` (nearest rank); 0 when empty.
func percentile(_ sorted: [Double], _ fraction: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    let rank = Int((fraction * Double(sorted.count)).rounded(.up)) - 1
    return sorted[min(max(rank, 0), sorted.count - 1)]
}
