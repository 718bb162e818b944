import Foundation
import Workers

/// Jobs the benchmark's own worker processes run.
enum BenchJobs {
    static let all: [any Job.Type] = [Empty.self, Tiny.self, Burn.self, Crash.self, Sleep.self]

    struct Empty: Job {
        static let name = "bench-empty"
        func run(_ input: Int) async throws -> Int { input }
    }

    struct Tiny: Job {
        static let name = "bench-tiny"
        func run(_ input: Int) async throws -> Int { input &* 2 &+ 1 }
    }

    /// About `input` iterations of an integer hash: CPU only.
    struct Burn: Job {
        static let name = "bench-burn"
        func run(_ input: Int) async throws -> UInt64 { burn(input) }
    }

    /// Sleeps `input` milliseconds, times `WORKERS_BENCH_PACE` (default 1: a slow host is an
    /// agent started with a larger pace); returns the pace.
    struct Sleep: Job {
        static let name = "bench-sleep"
        func run(_ input: Int) async throws -> Int {
            let pace = getenv("WORKERS_BENCH_PACE").flatMap { Int(String(cString: $0)) } ?? 1
            usleep(UInt32(input * pace) * 1_000)
            return pace
        }
    }

    struct Crash: Job {
        static let name = "bench-crash"
        func run(_ input: Int) async throws -> Int { exit(9) }
    }

    /// Reads its seed from a global so the optimiser cannot treat it as pure and move it out of
    /// the timed region.
    @inline(never)
    static func burn(_ iterations: Int) -> UInt64 {
        var x: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ (blackHoleSink & 1)
        for i in 0..<iterations { x = (x ^ UInt64(truncatingIfNeeded: i)) &* 0xBF58_476C_E484_E5B9; x ^= x >> 31 }
        return x
    }
}

/// `workers-bench processes`: ProcessPool against CPython's ProcessPoolExecutor and
/// multiprocessing.Pool on the same workloads in one run.
struct ProcessesSuite {
    var runs: Int
    var roundTrips: Int
    var mapJobs: Int
    var cancellations: Int
    var progress: (String) -> Void

    static let ours = "swift-workers ProcessPool"

    func run() async throws -> [Measurement] {
        var results: [Measurement] = []
        let burnIterations = calibrateBurn(seconds: 0.25)

        progress("round-trip: \(roundTrips) sequential empty jobs × \(runs) runs")
        let pool = try await ProcessPool(workers: 2, jobs: BenchJobs.all)
        results.append(measurement("round-trip", Self.ours, "per-op", try await ThreadsSuite.timed(runs: runs, perOp: roundTrips) {
            for i in 0..<roundTrips { _ = try await pool.run(BenchJobs.Empty.self, i) }
        }))

        progress("map-200k: map over \(mapJobs) tiny jobs, automatic chunks × \(runs) runs")
        results.append(measurement("map-200k", Self.ours, "per-job", try await ThreadsSuite.timed(runs: runs, perOp: mapJobs) {
            let outputs = try await pool.map(BenchJobs.Tiny.self, 0..<mapJobs)
            precondition(outputs.count == mapJobs)
        }))

        progress("cpu-8x0.25s: 8 CPU-bound jobs of about 0.25 s on 2 workers, and serially in one thread")
        let clock = ContinuousClock()
        var serial: [Double] = []
        var parallel: [Double] = []
        for _ in 0..<max(1, runs / 2) {
            var start = clock.now
            for _ in 0..<8 { blackHole(BenchJobs.burn(burnIterations)) }
            serial.append(start.duration(to: clock.now).seconds)
            start = clock.now
            _ = try await pool.map(BenchJobs.Burn.self, Array(repeating: burnIterations, count: 8), chunkSize: 1)
            parallel.append(start.duration(to: clock.now).seconds)
        }
        results.append(measurement("cpu-8x0.25s", "serial, one thread", "wall", serial))
        results.append(measurement("cpu-8x0.25s", Self.ours, "wall", parallel))

        progress("crash-to-ready: a worker crash until its replacement has answered")
        var recoveries: [Double] = []
        for _ in 0..<runs {
            let start = clock.now
            _ = try? await pool.run(BenchJobs.Crash.self, 0)
            _ = try await pool.run(BenchJobs.Empty.self, 0)
            recoveries.append(start.duration(to: clock.now).seconds)
        }
        results.append(measurement("crash-to-ready", Self.ours, "wall", recoveries))
        await pool.shutdown()

        progress("start: a pool until 2 workers are ready × \(runs) runs")
        var starts: [Double] = []
        for _ in 0..<runs {
            let start = clock.now
            let fresh = try await ProcessPool(workers: 2, jobs: BenchJobs.all)
            starts.append(start.duration(to: clock.now).seconds)
            await fresh.shutdown()
        }
        results.append(measurement("start-2-workers", Self.ours, "wall", starts))
        results += try await heartbeatLost()
        results.append(try await cancelRace())
        results += cpython(burnSeconds: 0.25)
        return results
    }

    /// (f) A worker stopped with SIGSTOP mid-job: the time until its caller gets `.workerLost`.
    private func heartbeatLost() async throws -> [Measurement] {
        let heartbeat = Heartbeat(interval: .milliseconds(50), lostAfter: .milliseconds(500))
        progress("heartbeat-lost: SIGSTOP a busy worker (interval 50 ms, lostAfter 500 ms) × \(max(1, runs / 2)) runs")
        let pool = try await ProcessPool(workers: 1, jobs: BenchJobs.all, heartbeat: heartbeat)
        let clock = ContinuousClock()
        var samples: [Double] = []
        for _ in 0..<max(1, runs / 2) {
            let sleeping = Task { try await pool.run(BenchJobs.Sleep.self, 60_000) }
            while !pool.workerInfo[0].isBusy { try await Task.sleep(for: .milliseconds(1)) }
            guard let pid = pool.workerInfo[0].processID else { continue }
            kill(pid, SIGSTOP)
            let stopped = clock.now
            do {
                _ = try await sleeping.value
            } catch let error as ProcessPoolError where error.code == .workerLost {
                samples.append(stopped.duration(to: clock.now).seconds)
            }
            _ = try await pool.run(BenchJobs.Empty.self, 0)  // the replacement is ready
        }
        await pool.shutdown()
        return [measurement("heartbeat-lost", Self.ours, "wall", samples, note: "SIGSTOP to .workerLost; target ≤ lostAfter + one interval = 550 ms")]
    }

    /// (g) Cancellations raced against answers: every other caller is cancelled 0–40 µs (plus the
    /// timer's lateness) after it submits, four callers at a time; the others must all succeed.
    /// Counts innocent failures (target: none), and how the cancelled ones ended.
    private func cancelRace() async throws -> Measurement {
        progress("cancel-race: \(cancellations) callers, every other one cancelled around its answer")
        let pool = try await ProcessPool(workers: 2, jobs: BenchJobs.all)
        let clock = ContinuousClock()
        let start = clock.now
        let total = cancellations
        let (innocent, cancelled) = try await withThrowingTaskGroup(of: (Bool, Bool).self) { group in
            var next = 0
            var innocent = 0
            var cancelled = 0
            func add() {
                let input = next
                next += 1
                let cancel = input % 2 == 0
                // Spread over before the dispatch, while the job runs, as the answer arrives and
                // after it (a timer this short fires late by tens of microseconds: that is the spread).
                let delay = Duration.microseconds(input / 2 % 40)
                group.addTask {
                    let task = Task { try await pool.run(BenchJobs.Empty.self, input) }
                    if cancel {
                        if delay > .zero { try? await Task.sleep(for: delay) } else { await Task.yield() }
                        task.cancel()
                    }
                    switch await task.result {
                    case .success(let value): return (value != input, false)
                    case .failure(is CancellationError): return (!cancel, true)
                    case .failure: return (true, false)  // no error but CancellationError is right here
                    }
                }
            }
            while next < min(total * 2, 4) { add() }
            while let (failedInnocent, wasCancelled) = try await group.next() {
                if failedInnocent { innocent += 1 }
                if wasCancelled { cancelled += 1 }
                if next < total * 2 { add() }
            }
            return (innocent, cancelled)
        }
        let elapsed = start.duration(to: clock.now).seconds
        let kills = pool.workerInfo.map(\.restarts).reduce(0, +)
        await pool.shutdown()
        return measurement("cancel-race", Self.ours, "wall", [elapsed], note: "\(total) cancellations raced against answers: \(innocent) innocent batches failed (target 0); \(cancelled) ended cancelled (the rest answered first), \(kills) of them by killing their worker mid-job")
    }

    private func measurement(_ workload: String, _ system: String, _ unit: String, _ samples: [Double], note: String? = nil) -> Measurement {
        Measurement(suite: "processes", workload: workload, system: system, unit: unit, samples: samples, note: note)
    }

    /// Iterations of the burn kernel that take about `seconds` here.
    private func calibrateBurn(seconds: Double) -> Int {
        let clock = ContinuousClock()
        var iterations = 1_000_000
        while true {
            let start = clock.now
            blackHole(BenchJobs.burn(iterations))
            let took = start.duration(to: clock.now).seconds
            if took > 0.05 { return Int(Double(iterations) * seconds / took) }
            iterations *= 4
        }
    }

    private func cpython(burnSeconds: Double) -> [Measurement] {
        let script = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("peers/processes_peer.py").path
        progress("CPython ProcessPoolExecutor and multiprocessing.Pool: the same workloads")
        switch Python.run([script, "--runs", String(runs), "--round-trips", String(roundTrips), "--map-jobs", String(mapJobs), "--burn-seconds", String(burnSeconds)]) {
        case .failure(let reason):
            return [measurement("round-trip", "CPython", "—", [], note: "skipped: \(reason)")]
        case .success(let lines):
            return lines.map { measurement($0.workload, $0.system, $0.unit, $0.samples_s) }
        }
    }
}

/// Where results go so the optimiser cannot drop the work that made them: a store to a global is
/// an effect it must keep.
nonisolated(unsafe) var blackHoleSink: UInt64 = 0  // written by one thread at a time; never read for meaning

@inline(never)
func blackHole(_ value: UInt64) {
    blackHoleSink &+= value
}
