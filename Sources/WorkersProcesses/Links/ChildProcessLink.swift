#if canImport(Glibc)
import Glibc
#endif
import CWorkersShims
import Foundation
import WorkersCore
import WorkersWire

/// Starts workers as child processes of this one, running `executable` with the channel on its
/// fds 3 (from the driver) and 4 (to the driver): the local placement.
package struct ChildProcessLauncher: WorkerLauncher {
    package let executable: String
    /// Variables removed from the workers' environment (a node agent's key and address).
    package var withheldVariables: [String] = []
    /// Variables added to it.
    package var addedVariables: [String: String] = [:]

    package init(executable: String, withheldVariables: [String] = [], addedVariables: [String: String] = [:]) {
        self.executable = executable
        self.withheldVariables = withheldVariables
        self.addedVariables = addedVariables
    }

    package func launch(slot: Int) throws(ProcessPoolError) -> any WorkerLink {
        var toWorker: [Int32] = [0, 0]
        var fromWorker: [Int32] = [0, 0]
        let toRC = toWorker.withUnsafeMutableBufferPointer { cworkers_pipe_cloexec($0.baseAddress!) }
        guard toRC == 0 else { throw ProcessPoolError(.spawnFailed(errno: -toRC)) }
        let fromRC = fromWorker.withUnsafeMutableBufferPointer { cworkers_pipe_cloexec($0.baseAddress!) }
        guard fromRC == 0 else {
            close(toWorker[0]); close(toWorker[1])
            throw ProcessPoolError(.spawnFailed(errno: -fromRC))
        }
        var environment = ProcessInfo.processInfo.environment
        for name in withheldVariables { environment[name] = nil }
        for (name, value) in addedVariables { environment[name] = value }
        environment[WorkerProcess.idVariable] = String(slot)
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
            throw ProcessPoolError(.spawnFailed(errno: -pid))
        }
        return ChildProcessLink(pid: pid, inputDescriptor: fromWorker[0], outputDescriptor: toWorker[1])
    }
}

/// A worker that is a child process of this one, over a pair of pipes. Its process group is its
/// own, so ending it ends whatever it started too.
package final class ChildProcessLink: WorkerLink, @unchecked Sendable {  // @unchecked: released once, by the slot's thread.
    package let pid: pid_t
    package let inputDescriptor: Int32
    package let outputDescriptor: Int32
    private var released = false

    init(pid: pid_t, inputDescriptor: Int32, outputDescriptor: Int32) {
        self.pid = pid
        self.inputDescriptor = inputDescriptor
        self.outputDescriptor = outputDescriptor
    }

    deinit {
        if !released { terminate() }
    }

    package var processID: Int32? { pid }

    package func residentBytes() -> Int? { WorkersProcesses.residentBytes(of: pid) }

    package func reap() -> ProcessPoolError.Code {
        release()
    }

    @discardableResult
    package func terminate() -> ProcessPoolError.Code {
        kill(-pid, SIGKILL)  // the group id is still ours: the worker is not reaped yet
        return release()
    }

    package func stop(grace: Duration) {
        let deadline = monotonicNanoseconds() + UInt64(grace.saturatingNanoseconds)
        _ = DescriptorIO.write(Frame(kind: .goodbye).encodedHeaderOnly, to: outputDescriptor, until: deadline)
        // The worker exits on goodbye; its end of the channel closing is the signal to reap it.
        if !DescriptorIO.waitForEndOfStream(inputDescriptor, until: deadline) {
            kill(-pid, SIGTERM)
            if !DescriptorIO.waitForEndOfStream(inputDescriptor, until: monotonicNanoseconds() + 100_000_000) { kill(-pid, SIGKILL) }
        }
        _ = release()
    }

    /// Reaps the worker and closes the channel. Anything the worker left running in its process
    /// group is killed while the worker is still a zombie: the group id cannot have been reused
    /// by then, so the signal reaches only ours.
    private func release() -> ProcessPoolError.Code {
        released = true
        _ = cworkers_wait_exited_keep_zombie(pid)
        kill(-pid, SIGKILL)
        let status = waitForExit(pid) ?? 0
        close(inputDescriptor)
        close(outputDescriptor)
        return WaitStatus(raw: status).crashCode
    }
}

extension WaitStatus {
    /// The error a worker that ended this way costs its batch.
    package var crashCode: ProcessPoolError.Code { .workerCrashed(signal: signal, exitCode: exitCode) }
}

extension Frame {
    /// The wire form of a frame with an empty payload (goodbye, heartbeat): 13 bytes.
    package var encodedHeaderOnly: [UInt8] {
        try! encoded()  // an empty payload is always within the frame limit
    }
}

/// The resident set size of process `pid`, from /proc/PID/statm, or `nil` if it cannot be read.
package func residentBytes(of pid: pid_t) -> Int? {
    guard let text = CPUCount.readSmallFile("/proc/\(pid)/statm") else { return nil }
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}
