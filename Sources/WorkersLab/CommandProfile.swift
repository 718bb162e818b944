#if canImport(Glibc)
import Glibc
#endif
import Foundation
import CWorkersShims
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
    /// Seconds the command's own process was ready to run but waited for a CPU (the run-queue
    /// delay in `/proc/PID/schedstat`, read before the process is reaped): on a busy machine, time
    /// that is neither computing nor waiting for I/O. A pipeline's other processes are not counted.
    public var runQueueSeconds: Double
    /// (user + system) ÷ (wall − run-queue wait): what the classification uses, so that a command
    /// preempted by other programs is not mistaken for one that waits on I/O.
    public var computeRatio: Double
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
        case runQueueSeconds = "run_queue_s"
        case computeRatio = "compute_ratio"
        case cpus
        case maxResidentBytes = "max_rss_bytes"
        case voluntarySwitches = "voluntary_switches"
        case involuntarySwitches = "involuntary_switches"
        case kind, use, workers, advice
    }

    /// Classifies a measurement. Pure: with ratio = CPU ÷ (wall − run-queue wait), the thresholds
    /// are ratio ≤ 0.3 (I/O-bound), ≥ 0.7 (CPU-bound), above 1.3 (parallel already), mixed between;
    /// a thread count for waits follows Goetz's rule, CPUs × (1 + wait ÷ compute) = CPUs ÷ ratio,
    /// capped at 64. The run-queue wait is taken out of the wall time because a process that waits
    /// for a core is not waiting for I/O: more threads would not help it.
    public static func classify(
        command: [String], exitStatus: Int32, wallSeconds: Double, userSeconds: Double, systemSeconds: Double,
        cpus: Int, runQueueSeconds: Double = 0, maxResidentBytes: Int = 0, voluntarySwitches: Int = 0, involuntarySwitches: Int = 0
    ) -> CommandProfile {
        let cpu = userSeconds + systemSeconds
        let queued = min(max(0, runQueueSeconds), wallSeconds)
        let available = wallSeconds - queued
        let ratio = available > 0 ? cpu / available : 0
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
        if wallSeconds > 0, queued >= 0.05 * wallSeconds {
            advice.append("It also waited \(String(format: "%.3f", queued)) s (\(percent(queued / wallSeconds)) of the wall time) for a free core, which other programs kept busy; that wait is counted as neither computing nor I/O.")
        }
        if voluntarySwitches > 0 || involuntarySwitches > 0 {
            advice.append("\(voluntarySwitches) voluntary context switches (waits) and \(involuntarySwitches) involuntary (preemptions).")
        }
        return CommandProfile(
            command: command, exitStatus: exitStatus, wallSeconds: wallSeconds, userSeconds: userSeconds,
            systemSeconds: systemSeconds, cpuPerWall: wallSeconds > 0 ? cpu / wallSeconds : 0,
            runQueueSeconds: queued, computeRatio: ratio, cpus: cpus, maxResidentBytes: maxResidentBytes,
            voluntarySwitches: voluntarySwitches, involuntarySwitches: involuntarySwitches,
            kind: kind, use: use, workers: workers, advice: advice
        )
    }

    /// Runs `command` to its end (stdin, stdout and stderr inherited, or stdout sent to stderr
    /// when `stdoutToStderr`), in our process group so a Ctrl-C reaches it too, timing it and
    /// reading its resource usage (its own and its waited-for children's) and its run-queue wait.
    public static func measure(_ command: [String], cpus: Int, stdoutToStderr: Bool = false) throws -> CommandProfile {
        guard let program = command.first else { throw LabError("no command to profile") }
        guard let path = executablePath(program) else {
            throw LabError(program.contains("/") ? "\(program): not an executable file" : "\(program): command not found")
        }
        let start = monotonicSeconds()
        let pid = withCStrings(command) { argv in
            withCStrings([path]) { paths in
                cworkers_spawn_job(paths[0]!, argv, environ, -1, stdoutToStderr ? STDERR_FILENO : -1, -1, nil, 0, 0)
            }
        }
        guard pid > 0 else { throw LabError("\(program): \(String(cString: strerror(-pid)))") }
        // Exited but not reaped: its /proc entry still holds what the scheduler counted.
        _ = cworkers_wait_exited_keep_zombie(pid)
        let wall = monotonicSeconds() - start
        let runQueue = runQueueNanoseconds(of: pid).map { Double($0) / 1e9 } ?? 0
        var status: Int32 = 0
        var usage = rusage()
        _ = retryingInterrupts { wait4(pid, &status, 0, &usage) }
        let ended = WaitStatus(raw: status)
        func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
        return classify(
            command: command, exitStatus: ended.exitCode ?? 128 + (ended.signal ?? 0), wallSeconds: wall,
            userSeconds: seconds(usage.ru_utime), systemSeconds: seconds(usage.ru_stime),
            cpus: cpus, runQueueSeconds: runQueue, maxResidentBytes: usage.ru_maxrss * 1_024,
            voluntarySwitches: usage.ru_nvcsw, involuntarySwitches: usage.ru_nivcsw
        )
    }

    /// The second field of `/proc/PID/schedstat`: nanoseconds the task spent runnable but waiting
    /// for a CPU. Nil where the kernel does not keep it.
    static func runQueueNanoseconds(of pid: pid_t) -> UInt64? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/schedstat", encoding: .utf8) else { return nil }
        return parseRunQueueNanoseconds(text)
    }

    /// The run-queue delay from the text of a `schedstat` file ("on-CPU ns, waiting ns, slices").
    static func parseRunQueueNanoseconds(_ text: String) -> UInt64? {
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        return fields.count >= 2 ? UInt64(fields[1]) : nil
    }

    /// The report a person reads.
    public var text: String {
        let mebibytes = Double(maxResidentBytes) / 1_048_576
        var lines = [
            "workers profile: \(command.joined(separator: " ")) (exit status \(exitStatus))",
            String(format: "  wall %.3f s · CPU %.3f s (user %.3f + system %.3f) · CPU ÷ wall %.2f on %d CPUs · waited %.3f s for a core · peak memory %.1f MiB",
                   wallSeconds, userSeconds + systemSeconds, userSeconds, systemSeconds, cpuPerWall, cpus, runQueueSeconds, mebibytes),
        ]
        lines += advice.map { "  " + $0 }
        return lines.joined(separator: "\n")
    }
}
