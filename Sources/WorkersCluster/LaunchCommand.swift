#if canImport(Glibc)
import Glibc
#endif
import CWorkersShims
import Foundation
import WorkersCore

/// A launcher command the driver runs — `srun`, `sbatch`, `ssh`, `scancel` — with its output
/// collected, and its process owned (polled, ended and reaped) by the placement.
final class LaunchedCommand: @unchecked Sendable {  // @unchecked: `lock` guards `status`.
    let arguments: [String]
    let pid: pid_t
    /// Where its standard error goes (a file the placement keeps), for error messages.
    let logPath: String?
    private let lock = PthreadLock()
    private var status: Int32?

    private init(arguments: [String], pid: pid_t, logPath: String?) {
        self.arguments = arguments
        self.pid = pid
        self.logPath = logPath
    }

    /// Starts `arguments` (the first looked up in `PATH`) with `environment` added to ours, its
    /// standard input and output on the given descriptors (-1: /dev/null), standard error into
    /// `logPath` (or ours).
    static func start(_ arguments: [String], environment: [String: String], stdin: Int32 = -1, stdout: Int32 = -1, logPath: String? = nil) throws(ClusterError) -> LaunchedCommand {
        guard let path = resolve(arguments[0]) else {
            throw ClusterError(.launchFailed, "\(arguments[0]) is not in PATH (\(getenv("PATH").map { String(cString: $0) } ?? ""))")
        }
        var merged = ProcessInfo.processInfo.environment
        for (name, value) in environment { merged[name] = value }
        let null = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { close(null) }
        var log: Int32 = -1
        if let logPath { log = open(logPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600) }
        defer { if log >= 0 { close(log) } }
        let pid = withCStrings(arguments) { argv in
            withCStrings(merged.map { "\($0.key)=\($0.value)" }) { envp in
                cworkers_spawn_job(path, argv, envp, stdin >= 0 ? stdin : null, stdout >= 0 ? stdout : null, log >= 0 ? log : -1, nil, 0, 1)
            }
        }
        guard pid > 0 else {
            throw ClusterError(.launchFailed, "cannot start \(arguments.joined(separator: " ")): \(String(cString: strerror(-pid)))")
        }
        return LaunchedCommand(arguments: arguments, pid: pid, logPath: logPath)
    }

    /// Runs `arguments` to the end and returns its status and standard output.
    static func run(_ arguments: [String], environment: [String: String] = [:], logPath: String? = nil) throws(ClusterError) -> (status: Int32, output: String) {
        var pipe: [Int32] = [0, 0]
        guard pipe.withUnsafeMutableBufferPointer({ cworkers_pipe_cloexec($0.baseAddress!) }) == 0 else {
            throw ClusterError(.launchFailed, "pipe: \(String(cString: strerror(errno)))")
        }
        let command: LaunchedCommand
        do {
            command = try start(arguments, environment: environment, stdout: pipe[1], logPath: logPath)
        } catch {
            close(pipe[0]); close(pipe[1])
            throw error
        }
        close(pipe[1])
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { readRetryingInterrupts(pipe[0], into: $0) }
            guard count > 0 else { break }
            output.append(contentsOf: buffer[0..<count])
        }
        close(pipe[0])
        return (command.wait(), String(decoding: output, as: UTF8.self))
    }

    static func resolve(_ name: String) -> String? {
        if name.contains("/") { return access(name, X_OK) == 0 ? name : nil }
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// Its exit status (as `waitpid` gives it) if it has ended; reaps it.
    var exited: Int32? {
        lock.withLock {
            if let status { return status }
            var raw: Int32 = 0
            if waitpid(pid, &raw, WNOHANG) == pid { status = raw }
            return status
        }
    }

    /// Waits for it to end; returns the exit status.
    @discardableResult
    func wait() -> Int32 {
        if let status = exited { return status }
        let raw = waitForExit(pid) ?? 0
        lock.withLock { status = raw }
        return raw
    }

    /// Waits up to `grace` for it to end, then sends SIGTERM to its group, then SIGKILL.
    func end(grace: Duration) {
        let deadline = ContinuousClock.now.advanced(by: grace)
        while exited == nil && ContinuousClock.now < deadline { usleep(10_000) }
        if exited == nil {
            kill(-pid, SIGTERM)
            let hard = ContinuousClock.now.advanced(by: .seconds(2))
            while exited == nil && ContinuousClock.now < hard { usleep(10_000) }
            if exited == nil { kill(-pid, SIGKILL) }
        }
        wait()
    }

    /// The end of its standard error log, for messages.
    var logTail: String {
        guard let logPath, let data = FileManager.default.contents(atPath: logPath), !data.isEmpty else { return "" }
        let text = String(decoding: data.suffix(600), as: UTF8.self)
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

}
