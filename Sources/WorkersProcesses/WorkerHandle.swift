#if canImport(Glibc)
import Glibc
#endif
import CWorkersShims
import Foundation
import WorkersCore
import WorkersWire

/// One live worker process, seen from the driver: its pid (and process group), its channel.
/// @unchecked Sendable: owned by one thread at a time (the one that started it, then its slot's).
final class WorkerHandle: @unchecked Sendable {
    let pid: pid_t
    var channel: FrameChannel
    var jobsDone = 0
    private var reaped = false

    init(pid: pid_t, channel: FrameChannel) {
        self.pid = pid
        self.channel = channel
    }

    deinit {
        if !reaped { kill() }
    }

    /// Starts `executable` as worker `id` and completes the handshake.
    static func start(executable: String, id: Int, jobNames: [String], maxFrameSize: Int) -> Result<WorkerHandle, ProcessPoolError> {
        var toWorker: [Int32] = [0, 0]
        var fromWorker: [Int32] = [0, 0]
        let toRC = toWorker.withUnsafeMutableBufferPointer { cworkers_pipe_cloexec($0.baseAddress!) }
        guard toRC == 0 else { return .failure(ProcessPoolError(.spawnFailed(errno: -toRC))) }
        let fromRC = fromWorker.withUnsafeMutableBufferPointer { cworkers_pipe_cloexec($0.baseAddress!) }
        guard fromRC == 0 else {
            close(toWorker[0]); close(toWorker[1])
            return .failure(ProcessPoolError(.spawnFailed(errno: -fromRC)))
        }
        var environment = ProcessInfo.processInfo.environment
        environment[WorkerProcess.idVariable] = String(id)
        environment[WorkerProcess.parentVariable] = String(getpid())
        if environment["SWIFT_BACKTRACE"] == nil { environment["SWIFT_BACKTRACE"] = "enable=no" }
        let pid = withCStrings([executable]) { argv in
            withCStrings(environment.map { "\($0.key)=\($0.value)" }) { envp in
                cworkers_spawn_worker(executable, argv, envp, toWorker[0], fromWorker[1])
            }
        }
        close(toWorker[0])
        close(fromWorker[1])
        guard pid > 0 else {
            close(toWorker[1]); close(fromWorker[0])
            return .failure(ProcessPoolError(.spawnFailed(errno: -pid)))
        }
        let handle = WorkerHandle(pid: pid, channel: FrameChannel(readFD: fromWorker[0], writeFD: toWorker[1], maxFrameSize: maxFrameSize))
        guard let hello = try? Frame(kind: .hello, message: Hello(workerID: id, jobNames: jobNames, maxFrameSize: maxFrameSize)),
              handle.channel.write(hello) else {
            handle.kill()
            return .failure(ProcessPoolError(.spawnFailed(errno: EPIPE)))
        }
        switch handle.channel.read(deadline: monotonicNanoseconds() + 30_000_000_000) {
        case .frame(let frame) where frame.kind == .welcome:
            guard let welcome = try? frame.decode(Welcome.self), case .success = Handshake.check(welcome, needs: jobNames) else {
                handle.kill()
                return .failure(ProcessPoolError(.protocolViolation("bad welcome")))
            }
            return .success(handle)
        case .frame(let frame) where frame.kind == .reject:
            handle.kill()
            return .failure(ProcessPoolError(.protocolViolation("worker refused: \(String(decoding: frame.payload, as: UTF8.self))")))
        case .endOfFile:
            return .failure(ProcessPoolError(handle.reap().crashCode))
        case .timedOut, .violation, .frame:
            return .failure(ProcessPoolError(handle.kill().crashCode))
        }
    }

    /// Kills the worker's process group, reaps it and closes the channel. Returns how it ended.
    @discardableResult
    func kill() -> ExitStatus {
        Glibc.kill(-pid, SIGKILL)  // the group id is still ours: the worker is not reaped yet
        return reap()
    }

    /// Says goodbye, closes the channel and reaps the worker, killing it after `grace`.
    func stop(grace: Duration) -> ExitStatus {
        reaped = true
        _ = channel.write(Frame(kind: .goodbye))
        close(channel.writeFD)
        let deadline = monotonicNanoseconds() + UInt64(grace.saturatingNanoseconds)
        // The worker exits on goodbye; its end of the channel closing is the signal to reap it.
        switch channel.read(deadline: deadline) {
        case .endOfFile: break
        default:
            Glibc.kill(-pid, SIGTERM)
            if case .timedOut = channel.read(deadline: monotonicNanoseconds() + 100_000_000) {
                Glibc.kill(-pid, SIGKILL)
            }
        }
        _ = cworkers_wait_exited_keep_zombie(pid)
        Glibc.kill(-pid, SIGKILL)  // anything the worker left in its group
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        close(channel.readFD)
        return ExitStatus(status)
    }

    /// Reaps an exited (or killed) worker and closes the channel.
    ///
    /// Anything the worker left running in its process group is killed while the worker is still
    /// a zombie: the group id cannot have been reused by then, so the signal reaches only ours.
    func reap() -> ExitStatus {
        reaped = true
        _ = cworkers_wait_exited_keep_zombie(pid)
        Glibc.kill(-pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        close(channel.readFD)
        close(channel.writeFD)
        return ExitStatus(status)
    }
}

/// How a worker process ended.
struct ExitStatus {
    var signal: Int32?
    var exitCode: Int32?

    init(_ status: Int32) {
        if status & 0x7F == 0 {
            exitCode = (status >> 8) & 0xFF
        } else {
            signal = status & 0x7F
        }
    }

    var crashCode: ProcessPoolError.Code { .workerCrashed(signal: signal, exitCode: exitCode) }
}

