import ArgumentParser
import Foundation
import Workers
import WorkersLab

/// `workers profile -- CMD [ARGS…]`: is a command I/O-bound or CPU-bound, and what to use.
struct ProfileCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profile",
        abstract: "Run a command and say whether it is I/O- or CPU-bound, and what to use.",
        discussion: """
            Runs the command, measures its CPU time (its own and its children's) against wall \
            time, and classifies it: I/O-bound (CPU ÷ wall ≤ 0.3) → threads, with a count from \
            Goetz's rule; CPU-bound (≥ 0.7) → processes, one per CPU; mixed; or parallel \
            already. Exits with the command's status. Example: workers profile -- gzip -9 big.log
            """
    )

    @Flag(name: .long, help: "Print the measurement and advice as JSON on stdout (the command's stdout goes to stderr).")
    var json = false

    @Argument(parsing: .captureForPassthrough, help: "The command and its arguments, after --.")
    var command: [String] = []

    func validate() throws {
        let words = command.first == "--" ? Array(command.dropFirst()) : command
        guard !words.isEmpty else { throw ValidationError("give a command to profile: workers profile -- CMD [ARGS…]") }
    }

    func run() throws {
        let words = command.first == "--" ? Array(command.dropFirst()) : command
        let profile: CommandProfile
        do {
            profile = try CommandProfile.measure(words, cpus: cpuCount, stdoutToStderr: json)
        } catch let error as LabError {
            FileHandle.standardError.write(Data("workers profile: \(error)\n".utf8))
            throw ExitCode(127)
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(profile), as: UTF8.self))
        } else {
            FileHandle.standardError.write(Data((profile.text + "\n").utf8))
        }
        if profile.exitStatus != 0 { throw ExitCode(profile.exitStatus) }
    }
}
