import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import WorkersCluster
import WorkersCore
import WorkersLab

/// `workers worker --connect HOST:PORT --key-file F [--slots N]`: a node agent for a pool
/// placed with `.external` (or started by any launcher), serving this program's jobs.
struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run a node agent: connect to a pool's driver and run its jobs in local worker processes.",
        discussion: """
            The driver prints this command when its placement is `.external`. The key file must be \
            mode 0600 in a directory of mode 0700; without --key-file the key is read from \
            WORKERS_KEY_FILE or WORKERS_KEY. The agent exits when the driver says goodbye or is \
            gone (status 0 or 75), and drains on SIGTERM or SIGUSR1.
            """
    )

    @Option(name: .long, help: ArgumentHelp("The driver's address.", valueName: "host:port"))
    var connect: String

    @Option(name: .long, help: ArgumentHelp("The pool's key file.", valueName: "path"))
    var keyFile: String?

    @Option(name: .long, help: "Worker slots (default: the CPUs this process may use).")
    var slots: Int?

    @Option(name: .long, help: ArgumentHelp("Seconds to keep trying to connect.", valueName: "seconds"))
    var connectTimeout: Double = 30

    func validate() throws {
        if let slots, slots < 1 { throw ValidationError("--slots must be at least 1 (got \(slots))") }
        guard connectTimeout > 0 else { throw ValidationError("--connect-timeout must be positive") }
        do {
            _ = try NodeAgent.parseEndpoint(connect)
        } catch {
            throw ValidationError("--connect: \(error.detail)")
        }
    }

    func run() throws {
        let endpoint = try NodeAgent.parseEndpoint(connect)
        let key: PoolKey
        do {
            key = try keyFile.map { try PoolKey.load(file: $0) } ?? PoolKey.fromAgentEnvironment()
        } catch let error as ClusterError {
            FileHandle.standardError.write(Data("workers worker: \(error.detail)\n".utf8))
            throw ExitCode(64)
        }
        // The key never reaches the workers this agent starts.
        unsetenv(PoolKey.fileVariable)
        unsetenv(PoolKey.environmentVariable)
        let options = NodeAgent.Options(
            connect: endpoint, slots: slots ?? cpuCount, key: key,
            connectTimeout: .milliseconds(Int64(connectTimeout * 1000))
        )
        let status = NodeAgent.run(jobs: LabJobs.all, options: options)
        if status != 0 { throw ExitCode(status) }
    }
}
