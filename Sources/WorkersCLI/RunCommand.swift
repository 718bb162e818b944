import ArgumentParser
import WorkersRun

/// `workers run`: listed in the command tree for its help; `WorkersCommand.runFromCommandLine`
/// hands its arguments to ``RunMain`` before the argument parser sees them.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a command for many inputs at once: GNU parallel's behaviour, compiled.",
        discussion: RunMain.usage
    )

    @Argument(parsing: .captureForPassthrough, help: "GNU parallel's options, the command and its inputs.")
    var arguments: [String] = []

    func run() throws {
        throw ExitCode(RunMain.main(arguments))
    }
}
