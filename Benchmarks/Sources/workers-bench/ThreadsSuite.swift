import Dispatch
import Foundation
import NIOPosix
import Workers

/// `workers-bench threads`: ThreadPool against NIOThreadPool, Dispatch, a TaskGroup on the default
/// executor and CPython's ThreadPoolExecutor, on the same workloads in one run.
struct ThreadsSuite {
    var runs: Int
    var roundTrips: Int
    var mapJobs: Int
    var threads: Int
    var blockingJobs = 1000
    var blockingThreads = 100
    var blockFor = Duration.milliseconds(10)
    /// Workloads to run; empty runs all.
    var only: Set<String> = []
    var progress: (String) -> Void

    static let nio = "NIOThreadPool"
    static let dispatch = "DispatchQueue.global + continuation"
    static let taskGroup = "TaskGroup, default executor"

    func run() async throws -> [Measurement] {
        func wanted(_ workload: String) -> Bool { only.isEmpty || only.contains(workload) }
        var results: [Measurement] = []
        if wanted("round-trip") { results += try await roundTrip() }
        if wanted("map-100k") { results += try await mapCost() }
        if wanted("blocking-1000x10ms") { results += try await blocking() }
        results += cpython()
        return results
    }

    private func measurement(_ workload: String, _ system: String, _ unit: String, _ samples: [Double], note: String? = nil) -> Measurement {
        Measurement(suite: "threads", workload: workload, system: system, unit: unit, samples: samples, note: note)
    }

    // MARK: (a) round trip of an empty job from an async caller

    private func roundTrip() async throws -> [Measurement] {
        let n = roundTrips
        progress("round-trip: \(n) sequential empty jobs × \(runs) runs per system")
        let pool = ThreadPool(threads: threads)
        let ours = try await Self.timed(runs: runs, perOp: n) {
            for _ in 0..<n { try await pool.run {} }
        }
        await pool.shutdown()

        let nio = NIOThreadPool(numberOfThreads: threads)
        nio.start()
        let nioSamples = try await Self.timed(runs: runs, perOp: n) {
            for _ in 0..<n { try await nio.runIfActive {} }
        }
        try await nio.shutdownGracefully()

        let dispatch = try await Self.timed(runs: runs, perOp: n) {
            for _ in 0..<n {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    DispatchQueue.global().async { continuation.resume() }
                }
            }
        }
        let group = try await Self.timed(runs: runs, perOp: n) {
            for _ in 0..<n {
                await withTaskGroup(of: Void.self) { group in
                    group.addTask {}
                    await group.waitForAll()
                }
            }
        }
        return [
            measurement("round-trip", Report.ours, "per-op", ours),
            measurement("round-trip", Self.nio, "per-op", nioSamples),
            measurement("round-trip", Self.dispatch, "per-op", dispatch),
            measurement("round-trip", Self.taskGroup, "per-op", group),
        ]
    }

    // MARK: (b) map over many empty jobs

    private func mapCost() async throws -> [Measurement] {
        let n = mapJobs
        progress("map-100k: map over \(n) empty jobs × \(runs) runs per system")
        let pool = ThreadPool(threads: threads)
        let ours = try await Self.timed(runs: runs, perOp: n) {
            let results = try await pool.map(0..<n) { $0 }
            precondition(results.count == n)
        }
        await pool.shutdown()

        let nio = NIOThreadPool(numberOfThreads: threads)
        nio.start()
        // NIOThreadPool has no map; 100,000 concurrent runIfActive calls cost it about 0.7 ms each
        // (measured here), so it gets a sliding window of 1,024 calls in flight.
        let nioSamples = try await Self.timed(runs: runs, perOp: n) {
            try await withThrowingTaskGroup(of: Int.self) { group in
                var next = 0
                var count = 0
                while next < min(n, 1024) {
                    let index = next
                    group.addTask { try await nio.runIfActive { index } }
                    next += 1
                }
                while try await group.next() != nil {
                    count += 1
                    if next < n {
                        let index = next
                        group.addTask { try await nio.runIfActive { index } }
                        next += 1
                    }
                }
                precondition(count == n)
            }
        }
        try await nio.shutdownGracefully()

        let dispatch = try await Self.timed(runs: runs, perOp: n) {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                DispatchQueue.global().async {
                    DispatchQueue.concurrentPerform(iterations: n) { _ in }
                    continuation.resume()
                }
            }
        }
        let group = try await Self.timed(runs: runs, perOp: n) {
            await withTaskGroup(of: Int.self) { group in
                for index in 0..<n { group.addTask { index } }
                var count = 0
                for await _ in group { count += 1 }
                precondition(count == n)
            }
        }
        return [
            measurement("map-100k", Report.ours, "per-job", ours),
            measurement("map-100k", Self.nio, "per-job", nioSamples, note: "window of 1,024 runIfActive calls in flight"),
            measurement("map-100k", "DispatchQueue.concurrentPerform", "per-job", dispatch),
            measurement("map-100k", Self.taskGroup, "per-job", group),
        ]
    }

    // MARK: (c) 1,000 blocking jobs with 100 threads, and (d) a heartbeat meanwhile

    private func blocking() async throws -> [Measurement] {
        let jobs = blockingJobs
        let block = blockFor
        let blockingRuns = max(1, runs / 2)
        progress("blocking-1000x10ms: \(jobs) jobs × 10 ms with \(blockingThreads) threads × \(blockingRuns) runs per system, heartbeat on the default executor")
        var results: [Measurement] = []

        let pool = ThreadPool(threads: blockingThreads)
        let (ours, oursLate) = try await Self.timedWithHeartbeat(runs: blockingRuns) {
            _ = try await pool.map(0..<jobs) { _ in Self.blockThread(for: block) }
        }
        await pool.shutdown()
        results.append(measurement("blocking-1000x10ms", Report.ours, "wall", ours))

        let nio = NIOThreadPool(numberOfThreads: blockingThreads)
        nio.start()
        let (nioWall, nioLate) = try await Self.timedWithHeartbeat(runs: blockingRuns) {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<jobs { group.addTask { try await nio.runIfActive { Self.blockThread(for: block) } } }
                try await group.waitForAll()
            }
        }
        try await nio.shutdownGracefully()
        results.append(measurement("blocking-1000x10ms", Self.nio, "wall", nioWall))

        let (dispatchWall, dispatchLate) = try await Self.timedWithHeartbeat(runs: 1) {
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<jobs {
                    group.addTask {
                        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                            DispatchQueue.global().async {
                                Self.blockThread(for: block)
                                continuation.resume()
                            }
                        }
                    }
                }
            }
        }
        results.append(measurement("blocking-1000x10ms", Self.dispatch, "wall", dispatchWall, note: "1 run: libdispatch grows its pool slowly"))

        let (groupWall, groupLate) = try await Self.timedWithHeartbeat(runs: 1) {
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<jobs { group.addTask { Self.blockThread(for: block) } }
            }
        }
        results.append(measurement("blocking-1000x10ms", Self.taskGroup, "wall", groupWall, note: "1 run: as wide as the CPU count"))
        results.append(measurement("blocking-1000x10ms", "ideal", "wall", [Double(jobs) / Double(blockingThreads) * block.seconds]))

        results.append(measurement("heartbeat-p99-late", Report.ours, "p99-late", oursLate))
        results.append(measurement("heartbeat-p99-late", Self.nio, "p99-late", nioLate))
        results.append(measurement("heartbeat-p99-late", Self.dispatch, "p99-late", dispatchLate))
        results.append(measurement("heartbeat-p99-late", Self.taskGroup, "p99-late", groupLate))
        return results
    }

    // MARK: CPython

    private func cpython() -> [Measurement] {
        let script = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("peers/threads_peer.py").path
        let arguments = [
            script, "--runs", String(runs), "--round-trips", String(roundTrips), "--map-jobs", String(mapJobs),
            "--threads", String(threads), "--blocking-jobs", String(blockingJobs), "--blocking-threads", String(blockingThreads),
            "--only", only.sorted().joined(separator: ","),
        ]
        progress("CPython ThreadPoolExecutor: the same three workloads")
        switch Python.run(arguments) {
        case .failure(let reason):
            return ["round-trip", "map-100k", "blocking-1000x10ms"].map {
                measurement($0, "CPython ThreadPoolExecutor", "—", [], note: "skipped: \(reason)")
            }
        case .success(let lines):
            return lines.map { measurement($0.workload, $0.system, $0.unit, $0.samples_s) }
        }
    }

    // MARK: Timing

    static func timed(runs: Int, perOp: Int, _ body: () async throws -> Void) async throws -> [Double] {
        try await body()  // warm-up: threads started, caches warm
        var samples: [Double] = []
        let clock = ContinuousClock()
        for _ in 0..<runs {
            let start = clock.now
            try await body()
            samples.append(start.duration(to: clock.now).seconds / Double(perOp))
        }
        return samples
    }

    /// Times `runs` runs of `body`; meanwhile a heartbeat on the default executor sleeps 1 ms at a
    /// time. Returns the wall times and each run's p99 heartbeat lateness.
    static func timedWithHeartbeat(runs: Int, _ body: () async throws -> Void) async throws -> ([Double], [Double]) {
        var walls: [Double] = []
        var lateness: [Double] = []
        let clock = ContinuousClock()
        for _ in 0..<runs {
            let beat = Task.detached { await heartbeat() }
            let start = clock.now
            try await body()
            walls.append(start.duration(to: clock.now).seconds)
            beat.cancel()
            let late = await beat.value.sorted()
            lateness.append(late.isEmpty ? .nan : late[min(late.count - 1, Int(Double(late.count) * 0.99))])
        }
        return (walls, lateness)
    }

    static func heartbeat() async -> [Double] {
        let clock = ContinuousClock()
        var late: [Double] = []
        while !Task.isCancelled {
            let deadline = clock.now.advanced(by: .milliseconds(1))
            do { try await Task.sleep(until: deadline, clock: clock) } catch { break }
            late.append(deadline.duration(to: clock.now).seconds)
        }
        return late
    }

    static func blockThread(for duration: Duration) {
        usleep(UInt32(duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000))
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// Runs a peer script with python3 and reads its JSON lines.
enum Python {
    struct Line: Decodable {
        var workload: String
        var system: String
        var samples_s: [Double]
        var unit: String
    }

    static func run(_ arguments: [String]) -> Result<[Line], PeerError> {
        guard let python = which("python3") else { return .failure(PeerError("python3 not found")) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        do { try process.run() } catch { return .failure(PeerError("python3 did not start: \(error)")) }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            return .failure(PeerError("python3 exited with status \(process.terminationStatus)"))
        }
        let decoder = JSONDecoder()
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap {
            try? decoder.decode(Line.self, from: Data($0.utf8))
        }
        return .success(lines)
    }

    static func which(_ name: String) -> String? {
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let path = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }
}

struct PeerError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
