import Foundation
import Testing
import WorkersTestJobs

/// End-to-end tests of the built `workers` binary: stdout, stderr and exit status.
@Suite(.timeLimit(.minutes(2))) struct WorkersBinaryTests {
    struct Output {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// The `workers` executable next to the test bundle in the build folder.
    static var binary: URL { URL(fileURLWithPath: TestPrograms.workers) }

    /// Runs the binary off Swift's cooperative threads: a test that blocks one of them (there are
    /// as many as CPUs) starves every other test's tasks.
    static func run(_ arguments: [String]) async throws -> Output {
        try await offThePool { try runBlocking(arguments) }
    }

    static func runBlocking(_ arguments: [String]) throws -> Output {
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Output(
            status: process.terminationStatus,
            stdout: String(decoding: stdout, as: UTF8.self),
            stderr: String(decoding: stderr, as: UTF8.self)
        )
    }

    @Test func theBinaryIsBuilt() {
        #expect(FileManager.default.isExecutableFile(atPath: Self.binary.path))
    }

    @Test func demoThreadsMeasuresBothExecutorsAsJSON() async throws {
        // 400 ms blocks: the four jobs are submitted one after another by a task that a busy machine
        // (the rest of the suite) may delay for tens of milliseconds; all four must still overlap.
        let output = try await Self.run(["demo", "threads", "--jobs", "4", "--block-ms", "400", "--json"])
        #expect(output.status == 0, "stderr: \(output.stderr)")
        struct Run: Decodable { var wallSeconds: Double; var peakConcurrency: Int; var heartbeatWorstLateMs: Double }
        struct Report: Decodable { var cpuCount: Int; var jobs: Int; var poolThreads: Int; var defaultExecutor: Run; var threadPool: Run }
        let report = try JSONDecoder().decode(Report.self, from: Data(output.stdout.utf8))
        #expect(report.jobs == 4)
        #expect(report.poolThreads == 4)
        #expect(report.threadPool.peakConcurrency == 4)  // one thread per job: all blocked at once
        #expect(report.defaultExecutor.peakConcurrency >= 1)
        #expect(report.threadPool.wallSeconds >= 0.4)
    }

    @Test func demoThreadsPrintsATableAndConclusionFromTheNumbers() async throws {
        let output = try await Self.run(["demo", "threads", "--jobs", "3", "--block-ms", "400"])
        #expect(output.status == 0)
        #expect(output.stdout.contains("ThreadPool(threads: 3)"))
        #expect(output.stdout.contains("default executor"))
        #expect(output.stdout.contains("the pool ran 3 at once"))
    }

    @Test(arguments: [
        (["demo", "threads", "--jobs", "0"], "--jobs must be at least 1"),
        (["demo", "threads", "--block-ms=-5"], "--block-ms must be at least 1"),
        (["demo", "threads", "--threads", "0"], "--threads must be at least 1"),
        (["demo", "threads", "--no-such-flag"], "--no-such-flag"),
        (["no-such-command"], "no-such-command"),
    ])
    func badInputNamesItselfAndFails(arguments: [String], message: String) async throws {
        let output = try await Self.run(arguments)
        #expect(output.status != 0)
        #expect(output.stderr.contains(message), "stderr: \(output.stderr)")
    }

    @Test func helpListsTheCommands() async throws {
        let output = try await Self.run(["--help"])
        #expect(output.status == 0)
        #expect(output.stdout.contains("USAGE: workers"))
        #expect(output.stdout.contains("demo"))
        let demo = try await Self.run(["demo", "threads", "--help"])
        #expect(demo.stdout.contains("--block-ms"))
    }
}
