import WorkersCLI

await WorkersCommand.runFromCommandLine()
