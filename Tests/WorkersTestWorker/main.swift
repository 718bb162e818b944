// The worker program of the process-pool tests: it serves TestJobs. Run as `WorkersTestWorker
// driver`, it is a driver instead: it starts a pool of 2 workers of itself, prints their pids on
// one line, and waits to be killed (the driver-death test).
#if canImport(Glibc)
import Glibc
#endif
import WorkersProcesses
import WorkersTestJobs

try await WorkerProcess.runIfWorker(jobs: TestJobs.all)

if CommandLine.arguments.dropFirst().first == "driver" {
    let pool = try await ProcessPool(workers: 2, jobs: TestJobs.all, executable: CommandLine.arguments[0])
    print(pool.workerInfo.compactMap(\.processID).map(String.init).joined(separator: " "))
    fflush(nil)  // every output stream, so the test reads the pids now
    while true { sleep(60) }
} else {
    print("WorkersTestWorker: run me from a ProcessPool, or as `WorkersTestWorker driver`")
}
