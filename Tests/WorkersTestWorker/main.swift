// The worker program of the process-pool tests: it serves TestJobs, as a worker or as a node
// agent (WORKERS_CONNECT set). Run as `WorkersTestWorker driver`, it is a driver instead: it
// starts a pool of 2 workers of itself, prints their pids on one line, and waits to be killed
// (the driver-death test). As `WorkersTestWorker cluster-driver N`, it is a driver of an
// external placement on 127.0.0.1: it prints `connect HOST:PORT KEYFILE`, waits for N agents,
// prints the pids of its remote workers, and waits to be killed.
#if canImport(Glibc)
import Glibc
#endif
import WorkersCluster
import WorkersProcesses
import WorkersTestJobs

try await WorkerProcess.runIfWorker(jobs: TestJobs.all, agent: .cluster)

let arguments = Array(CommandLine.arguments.dropFirst())
/// The cluster tests' heartbeat (eight times longer in their stress run, as theirs is).
let testDriverHeartbeat: Heartbeat = {
    let scale: Int64 = getenv("WORKERS_STRESS") == nil ? 1 : 8
    return Heartbeat(interval: .milliseconds(100 * scale), lostAfter: .seconds(scale))
}()
if arguments.first == "driver" {
    let pool = try await ProcessPool(workers: 2, jobs: TestJobs.all, executable: CommandLine.arguments[0])
    print(pool.workerInfo.compactMap(\.processID).map(String.init).joined(separator: " "))
    fflush(nil)  // every output stream, so the test reads the pids now
    while true { sleep(60) }
} else if arguments.first == "slurm-driver", arguments.count == 2 {
    // Agents on both Slurm nodes of the test hosts, dialling back to arguments[1].
    let pool = try await ProcessPool(
        jobs: TestJobs.all, placement: .slurm(.steps(nodes: 2, cpusPerNode: 2), options: { var options = ClusterOptions(); options.listen = .address(arguments[1]); return options }()),
        executable: CommandLine.arguments[0], heartbeat: testDriverHeartbeat
    )
    try await printWorkers(of: pool)
    while true { sleep(60) }
} else if arguments.first == "cluster-driver", arguments.count == 2, let agents = Int(arguments[1]) {
    let pool = try await ProcessPool(
        jobs: TestJobs.all,
        placement: .external(listen: .address("127.0.0.1"), expect: agents, announce: { text in
            // The lines of the announcement that matter to the test: the endpoint and the key file.
            if let line = text.split(separator: "\n").first(where: { $0.contains("--connect") }) {
                let words = line.split(separator: " ")
                if let connect = words.firstIndex(of: "--connect"), let key = words.firstIndex(of: "--key-file") {
                    print("connect \(words[connect + 1]) \(words[key + 1])")
                    fflush(nil)
                }
            }
        }),
        executable: CommandLine.arguments[0],
        heartbeat: testDriverHeartbeat
    )
    try await printWorkers(of: pool)
    while true { sleep(60) }
} else {
    print("WorkersTestWorker: run me from a ProcessPool, or as `WorkersTestWorker driver` or `cluster-driver N`")
}

/// Prints `workers PID…`: one nap per slot at once runs in each worker, so every worker's pid is seen.
func printWorkers(of pool: ProcessPool) async throws {
    let pids = try await withThrowingTaskGroup(of: Int32.self) { group in
        for _ in 0..<pool.workers { group.addTask { try await pool.run(Nap.self, 300) } }
        var all: [Int32] = []
        for try await pid in group { all.append(pid) }
        return all
    }
    print("workers " + pids.map(String.init).joined(separator: " "))
    fflush(nil)
}
