import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Workers
import WorkersCluster
import WorkersLab
import WorkersRun

/// The `workers` command tree. The executable's `main` only calls `WorkersCommand.main()`.
public struct WorkersCommand: AsyncParsableCommand {
    /// The command's name, abstract, version and subcommands.
    public static let configuration = CommandConfiguration(
        commandName: "workers",
        abstract: "Concurrency and parallelism for Swift on Linux: threads, processes and the GIL, measured.",
        version: "0.1.0",
        subcommands: [LabCommand.self, ProfileCommand.self, RunCommand.self, WorkerCommand.self, DemoCommand.self]
    )

    /// Creates the root command (ArgumentParser fills its options).
    public init() {}

    /// Parses the process's arguments, runs the command and exits with its status.
    ///
    /// ## Cancellation
    /// It is the program's whole life: nothing cancels it but a signal, which ends the process.
    /// In a worker process of the lab's process pool, it serves jobs instead and never returns.
    public static func runFromCommandLine() async {
        do {
            try await WorkerProcess.runIfWorker(jobs: LabJobs.all, agent: .cluster)
        } catch {
            FileHandle.standardError.write(Data("workers: worker failed: \(error)\n".utf8))
            Glibc.exit(70)
        }
        runCommandIfRequested()
        await main()
    }

    /// `workers run …`, before anything else starts: GNU parallel's command line taken as it is
    /// (`:::`, `-j4`, unknown options named with status 255), without the argument parser or the
    /// concurrency runtime. Exits with the run's status; returns at once for any other command
    /// (and in a worker process of the lab's pool).
    public static func runCommandIfRequested() {
        let arguments = RunMain.processArguments()[...]
        guard arguments.first == "run", WorkerProcess.workerID == nil else { return }
        Glibc.exit(RunMain.main(Array(arguments.dropFirst())))
    }
}

/// `workers demo …`: small, self-explaining demonstrations.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Small demonstrations that measure what the docs claim.",
        subcommands: [ThreadsDemoCommand.self]
    )
}
