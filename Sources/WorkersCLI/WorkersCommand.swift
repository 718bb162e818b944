import ArgumentParser

/// The `workers` command tree. The executable's `main` only calls `WorkersCommand.main()`.
public struct WorkersCommand: AsyncParsableCommand {
    /// The command's name, abstract, version and subcommands.
    public static let configuration = CommandConfiguration(
        commandName: "workers",
        abstract: "Concurrency and parallelism for Swift on Linux: thread pools, measured.",
        version: "0.1.0",
        subcommands: [DemoCommand.self]
    )

    /// Creates the root command (ArgumentParser fills its options).
    public init() {}

    /// Parses the process's arguments, runs the command and exits with its status.
    ///
    /// ## Cancellation
    /// It is the program's whole life: nothing cancels it but a signal, which ends the process.
    public static func runFromCommandLine() async {
        await main()
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
