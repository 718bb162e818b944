import ArgumentParser
import Foundation
import Workers
import WorkersCluster

@main
enum Entry {
    static func main() async throws {
        // The benchmark program is also the worker program of its process pools.
        try await WorkerProcess.runIfWorker(jobs: BenchJobs.all, agent: .cluster)
        await WorkersBench.main()
    }
}

struct WorkersBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workers-bench",
        abstract: "swift-workers side by side with its peers, in one run.",
        subcommands: [Threads.self, Processes.self, Cluster.self, Wire.self, Run.self]
    )
}

struct Threads: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "ThreadPool vs NIOThreadPool, Dispatch, a default-executor TaskGroup and CPython's ThreadPoolExecutor."
    )

    @Option(help: "Timed runs per workload and system (the blocking workload runs half as many).")
    var runs = 5

    @Option(help: "Sequential round trips per run.")
    var roundTrips = 20_000

    @Option(help: "Jobs per map run.")
    var mapJobs = 100_000

    @Option(help: "Pool threads for the round-trip and map workloads.")
    var threads = 4

    @Option(help: "Run only these workloads (comma-separated): round-trip, map-100k, blocking-1000x10ms.")
    var only: String?

    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
        let known: Set<String> = ["round-trip", "map-100k", "blocking-1000x10ms"]
        for name in onlySet where !known.contains(name) {
            throw ValidationError("--only: unknown workload '\(name)'; known: \(known.sorted().joined(separator: ", "))")
        }
        guard roundTrips >= 1, mapJobs >= 1, threads >= 1 else {
            throw ValidationError("--round-trips, --map-jobs and --threads must be at least 1")
        }
    }

    var onlySet: Set<String> { Set((only ?? "").split(separator: ",").map(String.init)) }

    func run() async throws {
        let suite = ThreadsSuite(runs: runs, roundTrips: roundTrips, mapJobs: mapJobs, threads: threads, only: onlySet) { line in
            FileHandle.standardError.write(Data("… \(line)\n".utf8))
        }
        let measurements = try await Task.detached { try await suite.run() }.value
        try output.emit(measurements)
    }
}

/// How every suite reports: a table on standard output, and the rows as JSON when asked.
struct OutputOptions: ParsableArguments {
    @Option(help: "Also write the rows as a JSON array to this file ('-' for standard output).")
    var json: String?

    func emit(_ measurements: [Measurement], reference: String = Report.ours) throws {
        if json != "-" { print(Report.table(measurements, reference: reference)) }
        guard let json else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(Report.rows(measurements, reference: reference))
        if json == "-" {
            print(String(decoding: data, as: UTF8.self))
        } else {
            try data.write(to: URL(fileURLWithPath: json))
        }
    }
}

struct Wire: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The process pool's payload codec vs JSONEncoder and binary PropertyListEncoder."
    )

    @Option(help: "Timed runs per codec and workload.")
    var runs = 5

    @Option(help: "Round trips per run of the small record (the 64 KiB payload runs 1/100 as many).")
    var iterations = 20_000

    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard runs >= 1, iterations >= 1 else { throw ValidationError("--runs and --iterations must be at least 1") }
    }

    func run() throws {
        let suite = WireSuite(runs: runs, iterations: iterations) { line in
            FileHandle.standardError.write(Data("… \(line)\n".utf8))
        }
        try output.emit(try suite.run(), reference: "WireEncoder/WireDecoder")
    }
}

struct Processes: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "ProcessPool vs CPython's ProcessPoolExecutor and multiprocessing.Pool."
    )

    @Option(help: "Timed runs per workload (the CPU workload runs half as many).")
    var runs = 5

    @Option(help: "Sequential round trips per run.")
    var roundTrips = 2_000

    @Option(help: "Jobs per map run.")
    var mapJobs = 200_000

    @Option(help: "Cancellations raced against answers (each against a job of its own, beside one that is not cancelled).")
    var cancellations = 10_000

    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard runs >= 1, roundTrips >= 1, mapJobs >= 1, cancellations >= 1 else {
            throw ValidationError("--runs, --round-trips, --map-jobs and --cancellations must be at least 1")
        }
    }

    func run() async throws {
        let suite = ProcessesSuite(runs: runs, roundTrips: roundTrips, mapJobs: mapJobs, cancellations: cancellations) { line in
            FileHandle.standardError.write(Data("… \(line)\n".utf8))
        }
        let measurements = try await Task.detached { try await suite.run() }.value
        try output.emit(measurements, reference: ProcessesSuite.ours)
    }
}

struct Cluster: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "ProcessPool beyond one machine (agents over authenticated TCP, srun when Slurm is up) vs a local pool and Dask."
    )

    @Option(help: "Timed runs per workload (the connect and loss workloads run half as many).")
    var runs = 5

    @Option(help: "Sequential round trips per run.")
    var roundTrips = 2_000

    @Option(help: "Jobs per map run.")
    var mapJobs = 200_000

    @Option(help: "Lazily produced inputs for the driver-memory workload.")
    var lazyInputs = 1_000_000

    @Option(help: "The address the driver listens on (127.0.0.1; with the test hosts up, 10.200.0.1).")
    var listen = "127.0.0.1"

    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard runs >= 1, roundTrips >= 1, mapJobs >= 1, lazyInputs >= 1 else {
            throw ValidationError("--runs, --round-trips, --map-jobs and --lazy-inputs must be at least 1")
        }
    }

    func run() async throws {
        let suite = ClusterSuite(runs: runs, roundTrips: roundTrips, mapJobs: mapJobs, lazyInputs: lazyInputs, listen: listen) { line in
            FileHandle.standardError.write(Data("… \(line)\n".utf8))
        }
        let measurements = try await Task.detached { try await suite.run() }.value
        try output.emit(measurements, reference: ClusterSuite.ours)
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "workers run vs GNU parallel and xargs -P (GNU parallel is installed from Debian when missing)."
    )

    @Option(help: "Timed runs per command (interleaved).")
    var runs = 3

    @Option(help: "Trivial jobs per run.")
    var jobs = 2_000

    @Option(help: "The workers binary to measure (default: ../.build/release/workers, then workers on PATH).")
    var workers: String?

    @Option(help: "The workers-run binary to measure beside it (default: workers-run next to the workers binary, if there).")
    var workersRun: String?

    @Option(name: .customLong("ssh-login"), help: "A host for the remote rows (give two: -S 2/A,2/B); none: no remote rows.")
    var sshLogins: [String] = []

    @Option(help: "The ssh command of the remote rows (as --ssh).")
    var ssh = "ssh"

    @Option(help: "Trivial remote jobs a run (ours; and --slurm's).")
    var remoteJobs = 1_000

    @Option(help: "Trivial remote jobs a run for GNU parallel (an ssh each: fewer).")
    var gnuRemoteJobs = 100

    @Flag(help: "Slurm rows: --slurm in salloc allocations of one node and two (salloc must work here).")
    var slurm = false

    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard runs >= 1, jobs >= 1 else { throw ValidationError("--runs and --jobs must be at least 1") }
        if let workers, access(workers, X_OK) != 0 { throw ValidationError("--workers \(workers) is not an executable file") }
        if let workersRun, access(workersRun, X_OK) != 0 { throw ValidationError("--workers-run \(workersRun) is not an executable file") }
    }

    func run() throws {
        let candidates = [workers, "../.build/release/workers", ".build/release/workers", RunSuite.which("workers")].compactMap { $0 }
        guard let binary = candidates.first(where: { access($0, X_OK) == 0 }) else {
            throw ValidationError("no workers binary: build it (swift build -c release --product workers) or pass --workers PATH")
        }
        let sibling = String(binary[..<(binary.lastIndex(of: "/").map { binary.index(after: $0) } ?? binary.startIndex)]) + "workers-run"
        let lean = workersRun ?? (access(sibling, X_OK) == 0 ? sibling : nil)
        let suite = RunSuite(runs: runs, jobs: jobs, workers: binary, workersRun: lean, sshLogins: sshLogins, ssh: ssh,
                             remoteJobs: remoteJobs, gnuRemoteJobs: gnuRemoteJobs, slurm: slurm) { line in
            FileHandle.standardError.write(Data("… \(line)\n".utf8))
        }
        try output.emit(try suite.run(), reference: RunSuite.ours)
    }
}
