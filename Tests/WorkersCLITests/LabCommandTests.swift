import Foundation
import Testing

/// `workers lab` and `workers profile`, end to end. Only checks that hold on a busy machine: the
/// structure, the I/O speed-ups (sleeping needs no CPU) and the GIL's ceiling. The full list of
/// targets is `scripts/check-lab.sh`.
@Suite(.serialized, .timeLimit(.minutes(5))) struct LabCommandTests {
    struct Cell: Decodable {
        var workload: String
        var mode: String
        var workers: Int
        var wall_s: Double
        var speedup: Double
        var cpu_per_wall: Double
        var source: String
        var checksum: String?
        var probe_median_ms: Double?
        var spans: [Span]?
        var note: String?
        var input_bytes: Int?
    }

    struct Span: Decodable {
        var lane: Int
        var task: Int
        var start: Double
        var end: Double
        var state: String
    }

    struct Report: Decodable {
        struct Config: Decodable {
            var switch_interval_ms: Double
            var io_tasks: Int
            var scaling_widths: [Int]
            var io_scaling_widths: [Int]
            var data_sizes: [Int]
        }
        struct Verdict: Decodable { var workload: String; var outcome: String; var claim: String; var because: String }
        struct Target: Decodable { var workload: String; var mode: String; var value: String; var at_least: Double?; var at_most: Double? }
        var config: Config
        var cells: [Cell]
        var conclusions: [String]
        var verdicts: [Verdict]
        var targets: [Target]
    }

    @Test func labQuickMeasuresEveryWorkloadInEveryMode() async throws {
        let output = try await WorkersBinaryTests.run([
            "lab", "--quick", "--io-sleep-ms", "100", "--cpu-task-ms", "60", "--probe-count", "15", "--json", "-",
        ])
        #expect(output.status == 0, "stderr: \(output.stderr)")
        let report = try JSONDecoder().decode(Report.self, from: Data(output.stdout.utf8))
        let swift = report.cells.filter { $0.source == "swift" }
        func cell(_ workload: String, _ mode: String) -> Cell? { swift.first { $0.workload == workload && $0.mode == mode } }

        for workload in ["io-sleep", "io-net", "cpu"] {
            for mode in ["serial", "async-1", "threads", "threads-gil", "processes"] {
                let found = cell(workload, mode)
                #expect(found != nil, "no \(workload) × \(mode)")
                #expect((found?.wall_s ?? 0) > 0)
                let spans: [Span] = found.flatMap(\.spans) ?? []
                #expect(!spans.isEmpty, "\(workload) × \(mode) has no timeline")
            }
        }
        // I/O: eight sleeps overlap. Serialized they would give 1; overlapped, about 8. The test
        // asks only that they overlap (≥ 2), which the rest of the suite running beside it cannot
        // hide (it measured 3.5 once, with a full suite on two cores); the lab's own target (≥ 6)
        // is a measurement, checked by `check-lab` in CI. Not in the stress run under
        // ThreadSanitizer, where only the structure and the ceilings below are checked.
        if ProcessInfo.processInfo.environment["WORKERS_STRESS"] != "1" {
            #expect((cell("io-sleep", "threads")?.speedup ?? 0) >= 2)
            #expect((cell("io-sleep", "async-1")?.speedup ?? 0) >= 2)
        }
        // The GIL's ceiling: one thread runs at a time, so the process never uses more than one
        // CPU's worth (a busy machine only lowers it; a speed-up would also need a fair serial run).
        #expect((cell("cpu", "threads-gil")?.cpu_per_wall ?? 9) <= 1.2)
        // Every mode ran the same work.
        let checksums = Set(["serial", "async-1", "threads", "threads-gil", "processes"].compactMap { cell("cpu", $0)?.checksum })
        #expect(checksums.count == 1)
        // The convoy: behind a CPU thread under the GIL, a 1 ms sleep wakes at least half an interval
        // late. Not in the stress run under ThreadSanitizer: there the CPU thread can be starved of
        // a core for the whole sleep, never take the GIL, and leave the probe an uncontended one
        // (seen once: 0.27 ms).
        // The lower bound is the lab's own target (from LabThresholds, in the JSON), not this test's.
        let convoy = try #require(report.targets.first { $0.workload == "mixed" && $0.mode == "threads-gil" && $0.value == "probe_median_ms" })
        #expect(convoy.at_least == report.config.switch_interval_ms / 2)
        if ProcessInfo.processInfo.environment["WORKERS_STRESS"] != "1" {
            #expect((cell("mixed", "threads-gil")?.probe_median_ms ?? 0) >= convoy.at_least ?? .infinity)
        }
        #expect(report.conclusions.count >= 4)
        // The scaling curves: every mode at every width, beside one serial run.
        for (workload, widths) in [("cpu-scaling", report.config.scaling_widths), ("io-scaling", report.config.io_scaling_widths)] {
            #expect(widths.first == 1 && widths.count >= 3, "\(workload) widths \(widths)")
            #expect(cell(workload, "serial") != nil)
            for mode in ["threads", "threads-gil", "processes"] {
                let measured = swift.filter { $0.workload == workload && $0.mode == mode && $0.wall_s > 0 }.map(\.workers)
                #expect(measured == widths, "\(workload) × \(mode) at \(measured)")
            }
        }
        // Under the simulated GIL the CPU curve stays flat: never the CPU-bound speed-up of two cores.
        #expect(swift.filter { $0.workload == "cpu-scaling" && $0.mode == "threads-gil" }.allSatisfy { $0.cpu_per_wall <= 1.2 })
        // When processes lose: every size in every mode, the pool's start-up apart.
        for mode in ["serial", "threads", "processes"] {
            let sizes = swift.filter { $0.workload == "data" && $0.mode == mode }.compactMap(\.input_bytes)
            #expect(sizes == report.config.data_sizes, "data × \(mode) at \(sizes)")
        }
        #expect((cell("data", "pool-start")?.wall_s ?? 0) > 0)
        #expect(!swift.contains { $0.workload == "data" && ($0.note ?? "").contains("differ") })
        // A claim and a verdict for every section, the new ones included.
        for workload in ["io-sleep", "cpu", "cpu-scaling", "io-scaling", "data"] {
            #expect(report.verdicts.contains { $0.workload == workload && !$0.claim.isEmpty && !$0.because.isEmpty }, "no verdict on \(workload)")
        }
        #expect(report.conclusions.contains { $0.hasPrefix("CPU-bound scaling") })
        #expect(report.conclusions.contains { $0.hasPrefix("Data-heavy") })
        // CPython: measured cells, or one that says why not.
        let python = report.cells.filter { $0.source == "cpython" }
        #expect(!python.isEmpty)
        if python.contains(where: { $0.note == "python3 not found" }) == false {
            #expect(python.contains { $0.workload == "cpu" && $0.mode == "cpython-processes" && $0.speedup > 0 })
        }
    }

    @Test func labWritesAnHTMLReportAndPrintsTablesAndConclusions() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lab-test-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let html = directory.appendingPathComponent("lab.html").path
        let output = try await WorkersBinaryTests.run([
            "lab", "--quick", "--no-python", "--only", "io-sleep,cpu", "--io-sleep-ms", "20", "--cpu-task-ms", "40",
            "--report", html, "--svg-dir", directory.path,
        ])
        #expect(output.status == 0, "stderr: \(output.stderr)")
        #expect(output.stdout.contains("Conclusions"))
        #expect(output.stdout.contains("ThreadPool(2) + simulated GIL") || output.stdout.contains("simulated GIL"))
        #expect(output.stdout.contains("python3 not found"))
        let page = try String(contentsOfFile: html, encoding: .utf8)
        #expect(page.contains("<svg"))
        #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("cpu-threads-gil.svg").path))
        #expect(output.stderr.contains("cpu · threads-gil"))  // the progress line
    }

    @Test func badLabFlagsNameThemselves() async throws {
        let unknown = try await WorkersBinaryTests.run(["lab", "--only", "disk"])
        #expect(unknown.status != 0)
        #expect(unknown.stderr.contains("--only"))
        let zero = try await WorkersBinaryTests.run(["lab", "--cpu-task-ms", "0"])
        #expect(zero.status != 0)
        #expect(zero.stderr.contains("--cpu-task-ms"))
    }

    @Test func profileTellsASleepFromALoop() async throws {
        let sleep = try await WorkersBinaryTests.run(["profile", "--json", "--", "sleep", "0.3"])
        #expect(sleep.status == 0, "stderr: \(sleep.stderr)")
        struct Profile: Decodable { var kind: String; var use: String; var workers: Int; var compute_ratio: Double; var run_queue_s: Double; var advice: [String] }
        let waiting = try JSONDecoder().decode(Profile.self, from: Data(sleep.stdout.utf8))
        #expect(waiting.kind == "io-bound")
        #expect(waiting.use == "threads")

        let loop = try await WorkersBinaryTests.run(["profile", "--json", "--", "sh", "-c", "i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done"])
        #expect(loop.status == 0, "stderr: \(loop.stderr)")
        let computing = try JSONDecoder().decode(Profile.self, from: Data(loop.stdout.utf8))
        // On a busy machine the loop gets less than a core: its wait for one is taken out of the
        // wall time (run_queue_s), so it is not mistaken for a wait on I/O.
        #expect(computing.kind != "io-bound", "\(computing)")
        #expect(computing.use == "processes")
        #expect(computing.compute_ratio > 10 * waiting.compute_ratio, "\(computing) vs \(waiting)")
    }

    @Test func profilePassesTheCommandsStatusAndNamesAMissingOne() async throws {
        let failing = try await WorkersBinaryTests.run(["profile", "--", "sh", "-c", "exit 3"])
        #expect(failing.status == 3)
        #expect(failing.stderr.contains("workers profile: sh -c exit 3 (exit status 3)"))
        let missing = try await WorkersBinaryTests.run(["profile", "--", "no-such-command-for-workers"])
        #expect(missing.status == 127)
        #expect(missing.stderr.contains("command not found"))
        let none = try await WorkersBinaryTests.run(["profile"])
        #expect(none.status != 0)
    }
}
