#if canImport(Glibc)
import Glibc
#endif
import Foundation
import WorkersCore

/// What `workers profile` measured of a command, and what it makes of it.
public struct CommandProfile: Codable, Sendable, Equatable {
    /// Where a command spends its time.
    public enum Kind: String, Codable, Sendable {
        /// Mostly waiting: threads (or async) overlap the waits.
        case ioBound = "io-bound"
        /// Mostly computing on one core: processes (or Swift threads) use the others.
        case cpuBound = "cpu-bound"
        /// Already computing on several cores at once.
        case parallel
        /// Both, in measure.
        case mixed
    }

    /// The command and its arguments.
    public var command: [String]
    /// The command's exit status.
    public var exitStatus: Int32
    /// Wall time, in seconds.
    public var wallSeconds: Double
    /// CPU time in user mode (the command and its children), in seconds.
    public var userSeconds: Double
    /// CPU time in the kernel (the command and its children), in seconds.
    public var systemSeconds: Double
    /// (user + system) ÷ wall: 1.0 is one core busy all the time.
    public var cpuPerWall: Double
    /// CPUs this process may use.
    public var cpus: Int
    /// The largest resident set of the command or a child, in bytes.
    public var maxResidentBytes: Int
    /// Context switches the command made by waiting.
    public var voluntarySwitches: Int
    /// Times the command was preempted.
    public var involuntarySwitches: Int
    /// Where the command spends its time.
    public var kind: Kind
    /// `threads` or `processes`.
    public var use: String
    /// How many to run at once.
    public var workers: Int
    /// The advice, with the numbers behind it.
    public var advice: [String]

    enum CodingKeys: String, CodingKey {
        case command
        case exitStatus = "exit_status"
        case wallSeconds = "wall_s"
        case userSeconds = "user_s"
        case systemSeconds = "system_s"
        case cpuPerWall = "cpu_per_wall"
        case cpus
        case maxResidentBytes = "max_rss_bytes"
        case voluntarySwitches = "voluntary_switches"
        case involuntarySwitches = "involuntary_switches"
        case kind, use, workers, advice
    }

    /// Classifies a measurement. Pure: the thresholds are CPU ÷ wall ≤ 0.3 (I/O-bound), ≥ 0.7
    /// (CPU-bound), above 1.3 (parallel already), mixed between; a thread count for waits follows
    /// Goetz's rule, CPUs × (1 + wait ÷ compute) = CPUs ÷ (CPU ÷ wall), capped at 64.
    public static func classify(
        command: [String], exitStatus: Int32, wallSeconds: Double, userSeconds: Double, systemSeconds: Double,
        cpus: Int, maxResidentBytes: Int = 0, voluntarySwitches: Int = 0, involuntarySwitches: Int = 0
    ) -> CommandProfile {
        let cpu = userSeconds + systemSeconds
        let ratio = wallSeconds > 0 ? cpu / wallSeconds : 0
        let cpus = max(1, cpus)
        let waiting = max(0, 1 - min(ratio, 1))
        let kind: Kind
        let use: String
        let workers: Int
        var advice: [String] = []
        let percent = { (value: Double) in String(format: "%.0f %%", value * 100) }
        if ratio > 1.3 {
            kind = .parallel
            use = "processes"
            workers = max(1, Int((Double(cpus) / ratio).rounded()))
            advice.append("It kept \(String(format: "%.1f", ratio)) cores busy on its own: it is parallel already.")
            advice.append("Run at most \(workers) at once on \(cpus) CPUs (`workers run -j \(workers)`); more would only queue for the cores.")
        } else if ratio >= 0.7 {
            kind = .cpuBound
            use = "processes"
            workers = cpus
            advice.append("It computed \(percent(min(ratio, 1))) of the time on one core: CPU-bound.")
            advice.append("Use processes, one per CPU: \(cpus) at once (`workers run -j \(cpus)`, or ProcessPool(workers: \(cpus))). Under a GIL, threads would not help; in Swift, threads would too.")
        } else if ratio <= 0.3 {
            kind = .ioBound
            use = "threads"
            workers = min(64, max(cpus, Int((Double(cpus) / max(ratio, 0.001)).rounded(.up))))
            advice.append("It waited \(percent(waiting)) of the time: I/O-bound.")
            advice.append("Use threads (or async): about \(workers) at once overlap the waits (\(cpus) CPUs ÷ \(String(format: "%.2f", ratio)) CPU per wall second\(workers == 64 ? ", capped at 64" : "")) — ThreadPool(threads: \(workers)) or `workers run -j \(workers)`.")
        } else {
            kind = .mixed
            use = "processes"
            workers = cpus
            let threads = min(64, Int((1 / max(ratio, 0.01)).rounded(.up)))
            advice.append("It computed \(percent(ratio)) and waited \(percent(waiting)) of the time: mixed.")
            advice.append("Use \(cpus) processes for the computing, each with about \(threads) threads for the waits; or simply `workers run -j \(cpus * threads)`.")
        }
        if voluntarySwitches > 0 || involuntarySwitches > 0 {
            advice.append("\(voluntarySwitches) voluntary context switches (waits) and \(involuntarySwitches) involuntary (preemptions).")
        }
        return CommandProfile(
            command: command, exitStatus: exitStatus, wallSeconds: wallSeconds, userSeconds: userSeconds,
            systemSeconds: systemSeconds, cpuPerWall: ratio, cpus: cpus, maxResidentBytes: maxResidentBytes,
            voluntarySwitches: voluntarySwitches, involuntarySwitches: involuntarySwitches,
            kind: kind, use: use, workers: workers, advice: advice
        )
    }

    /// Runs `command` to its end (stdin inherited; stdout inherited, or sent to stderr when
    /// `quietStdout`), timing it and reading its children's resource usage.
    public static func measure(_ command: [String], cpus: Int, stdoutToStderr: Bool = false) throws -> CommandProfile {
        guard let program = command.first else { throw LabError("no command to profile") }
        let process = Process()
        guard let path = executablePath(program) else {
            throw LabError(program.contains("/") ? "\(program): not an executable file" : "\(program): command not found")
        }
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = Array(command.dropFirst())
        if stdoutToStderr { process.standardOutput = FileHandle.standardError }
        var before = rusage()
        getrusage(RUSAGE_CHILDREN.rawValue, &before)
        let start = monotonicSeconds()
        try process.run()
        process.waitUntilExit()
        let wall = monotonicSeconds() - start
        var after = rusage()
        getrusage(RUSAGE_CHILDREN.rawValue, &after)
        func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
        return classify(
            command: command, exitStatus: process.terminationStatus, wallSeconds: wall,
            userSeconds: seconds(after.ru_utime) - seconds(before.ru_utime),
            systemSeconds: seconds(after.ru_stime) - seconds(before.ru_stime),
            cpus: cpus, maxResidentBytes: after.ru_maxrss * 1_024,
            voluntarySwitches: after.ru_nvcsw - before.ru_nvcsw, involuntarySwitches: after.ru_nivcsw - before.ru_nivcsw
        )
    }

    /// The report a person reads.
    public var text: String {
        let mebibytes = Double(maxResidentBytes) / 1_048_576
        var lines = [
            "workers profile: \(command.joined(separator: " ")) (exit status \(exitStatus))",
            String(format: "  wall %.3f s · CPU %.3f s (user %.3f + system %.3f) · CPU ÷ wall %.2f on %d CPUs · peak memory %.1f MiB",
                   wallSeconds, userSeconds + systemSeconds, userSeconds, systemSeconds, cpuPerWall, cpus, mebibytes),
        ]
        lines += advice.map { "  " + $0 }
        return lines.joined(separator: "\n")
    }
}
