// The worker program of the process-pool tests: it serves TestJobs and nothing else.
import WorkersProcesses
import WorkersTestJobs

try await WorkerProcess.runIfWorker(jobs: TestJobs.all)
print("WorkersTestWorker: run me from a ProcessPool")
