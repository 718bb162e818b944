import WorkersCLI

// `workers run` first and synchronously: a job's start should not wait for the async runtime.
WorkersCommand.runCommandIfRequested()
await WorkersCommand.runFromCommandLine()
