import ArgumentParser
import Foundation
import Workers

/// `workers demo threads`: blocking jobs on Swift's default executor vs on a ``ThreadPool``.
struct ThreadsDemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "threads",
        abstract: "Blocking jobs on the default executor vs on a ThreadPool, timed.",
        discussion: """
            Runs the same blocking jobs (each sleeps in a blocking call) twice: as tasks in a \
            TaskGroup on Swift's default executor, which on Linux has one thread per CPU, and on a \
            ThreadPool with a thread per job. Prints wall time, speed-up and the most jobs seen \
            running at once, and how late a 1 ms heartbeat task on the default executor woke meanwhile.
            """
    )

    @Option(name: .long, help: "How many blocking jobs to run (at least 1).")
    var jobs: Int = 16

    @Option(name: .long, help: "How long each job blocks, in milliseconds (at least 1).")
    var blockMs: Int = 100

    @Option(name: .long, help: "ThreadPool threads (default: one per job).")
    var threads: Int?

    @Flag(name: .long, help: "Print the measurements as JSON.")
    var json = false

    func validate() throws {
        guard jobs >= 1 else { throw ValidationError("--jobs must be at least 1 (got \(jobs))") }
        guard blockMs >= 1 else { throw ValidationError("--block-ms must be at least 1 (got \(blockMs))") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1 (got \(threads))") }
    }

    func run() async throws {
        let block = Duration.milliseconds(blockMs)
        let poolThreads = threads ?? jobs
        let defaultExecutor = try await BlockingDemo.measure(jobs: jobs, block: block, on: nil)
        let pool = ThreadPool(threads: poolThreads)
        let onPool = try await BlockingDemo.measure(jobs: jobs, block: block, on: pool)
        await pool.shutdown()

        let report = ThreadsDemoReport(
            cpuCount: cpuCount, jobs: jobs, blockMs: blockMs, poolThreads: poolThreads,
            defaultExecutor: defaultExecutor, threadPool: onPool
        )
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(report.text)
        }
    }
}

/// One measured run of blocking jobs.
struct BlockingRun: Codable, Equatable {
    var wallSeconds: Double
    var peakConcurrency: Int
    var heartbeatWorstLateMs: Double
}

enum BlockingDemo {
    /// Runs `jobs` blocking sleeps as child tasks, on `pool` or (nil) the default executor, while a
    /// heartbeat on the default executor ticks every millisecond.
    static func measure(jobs: Int, block: Duration, on pool: ThreadPool?) async throws -> BlockingRun {
        let gauge = ConcurrencyGauge()
        let heartbeat = Heartbeat()
        let beat = Task.detached { await heartbeat.run() }
        let clock = ContinuousClock()
        let start = clock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<jobs {
                group.addTask(executorPreference: pool) {
                    gauge.enter()
                    blockThread(for: block)
                    gauge.leave()
                }
            }
            try await group.waitForAll()
        }
        let wall = start.duration(to: clock.now)
        beat.cancel()
        await beat.value
        return BlockingRun(
            wallSeconds: wall.seconds,
            peakConcurrency: gauge.peak,
            heartbeatWorstLateMs: heartbeat.worstLateness.seconds * 1000
        )
    }

    /// A blocking sleep: it holds the thread, as a synchronous read or C call does.
    static func blockThread(for duration: Duration) {
        sleepThread(nanoseconds: UInt64(max(0, duration.saturatingNanoseconds)))
    }
}

/// Counts jobs running at once and remembers the most.
final class ConcurrencyGauge: @unchecked Sendable {  // @unchecked: state guarded by `lock`.
    private let lock = NSLock()
    private var current = 0
    private var maximum = 0

    func enter() {
        lock.lock()
        current += 1
        maximum = max(maximum, current)
        lock.unlock()
    }

    func leave() {
        lock.lock()
        current -= 1
        lock.unlock()
    }

    var peak: Int {
        lock.lock()
        defer { lock.unlock() }
        return maximum
    }
}

/// A task on the default executor that sleeps 1 ms at a time and records how late it wakes.
final class Heartbeat: @unchecked Sendable {  // @unchecked: state guarded by `lock`.
    private let lock = NSLock()
    private var worst = Duration.zero

    func run() async {
        let clock = ContinuousClock()
        while !Task.isCancelled {
            let deadline = clock.now.advanced(by: .milliseconds(1))
            do { try await Task.sleep(until: deadline, clock: clock) } catch { return }
            let late = deadline.duration(to: clock.now)
            lock.withLock { worst = max(worst, late) }
        }
    }

    var worstLateness: Duration {
        lock.lock()
        defer { lock.unlock() }
        return worst
    }
}

struct ThreadsDemoReport: Codable {
    var cpuCount: Int
    var jobs: Int
    var blockMs: Int
    var poolThreads: Int
    var defaultExecutor: BlockingRun
    var threadPool: BlockingRun

    var idealSeconds: Double {
        Double(blockMs) / 1000 * Double((jobs + poolThreads - 1) / poolThreads)
    }

    var text: String {
        let speedUp = defaultExecutor.wallSeconds / threadPool.wallSeconds
        func row(_ name: String, _ run: BlockingRun) -> String {
            name.padding(toLength: 26, withPad: " ", startingAt: 0)
                + format(run.wallSeconds, 3).leftPadded(8) + " s"
                + format(defaultExecutor.wallSeconds / run.wallSeconds, 1).leftPadded(9) + "×"
                + String(run.peakConcurrency).leftPadded(10)
                + format(run.heartbeatWorstLateMs, 1).leftPadded(12) + " ms"
        }
        var lines: [String] = []
        lines.append("\(jobs) jobs, each blocking its thread for \(blockMs) ms; \(cpuCount) CPUs usable.")
        lines.append("")
        lines.append("where the jobs ran".padding(toLength: 26, withPad: " ", startingAt: 0)
            + "wall".leftPadded(10) + "speed-up".leftPadded(10) + "at once".leftPadded(10) + "heartbeat late".leftPadded(15))
        lines.append(row("default executor", defaultExecutor))
        lines.append(row("ThreadPool(threads: \(poolThreads))", threadPool))
        lines.append("")
        lines.append(
            "The default executor ran at most \(defaultExecutor.peakConcurrency) blocking jobs at once "
                + "(its width is the CPU count), so \(jobs) jobs took \(format(defaultExecutor.wallSeconds, 2)) s; "
                + "the pool ran \(threadPool.peakConcurrency) at once and took \(format(threadPool.wallSeconds, 2)) s "
                + "(ideal \(format(idealSeconds, 2)) s): \(format(speedUp, 1))× faster."
        )
        lines.append(
            "Meanwhile a 1 ms heartbeat on the default executor woke up to "
                + "\(format(defaultExecutor.heartbeatWorstLateMs, 1)) ms late with the jobs there, and "
                + "\(format(threadPool.heartbeatWorstLateMs, 1)) ms late with the jobs on the pool."
        )
        return lines.joined(separator: "\n")
    }
}

func format(_ value: Double, _ digits: Int) -> String {
    String(format: "%.\(digits)f", value)
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}

extension Duration {
    var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
