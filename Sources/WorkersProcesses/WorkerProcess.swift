#if canImport(Glibc)
import Glibc
#endif
import CWorkersShims
import Foundation
import WorkersCore
import WorkersWire

/// The worker side of a ``ProcessPool``.
///
/// A pool starts workers by running the current program again (like multiprocessing's "spawn"),
/// so the program's `main` must hand control to the worker loop first thing:
///
/// ```swift
/// @main struct App {
///     static func main() async throws {
///         try await WorkerProcess.runIfWorker(jobs: [Checksum.self])   // returns at once in the driver
///         …
///     }
/// }
/// ```
public enum WorkerProcess {
    package static let idVariable = "WORKERS_WORKER_ID"
    /// Set for the workers of a node agent: they leave drain signals to the agent.
    package static let underAgentVariable = "WORKERS_UNDER_AGENT"
    static let parentVariable = "WORKERS_PARENT_PID"
    /// How long each side of the channel polls before it blocks (`WORKERS_SPIN_US` overrides, in µs).
    package static let spinNanoseconds: UInt64 = microseconds("WORKERS_SPIN_US") ?? 50_000
    /// How long a driver's slot thread polls before it blocks, after an answer
    /// (`WORKERS_DRIVER_SPIN_US` overrides, in µs; default as ``spinNanoseconds``).
    static let driverSpinNanoseconds: UInt64 = microseconds("WORKERS_DRIVER_SPIN_US") ?? spinNanoseconds

    private static func microseconds(_ variable: String) -> UInt64? {
        getenv(variable).flatMap { UInt64(String(cString: $0)) }.map { $0 * 1_000 }
    }

    /// This process's worker id, or `nil` in a driver. A job can read it.
    public static var workerID: Int? {
        // getenv, not ProcessInfo's dictionary of the whole environment: every start of the
        // `workers` binary asks, and building that dictionary cost it about a millisecond.
        getenv(idVariable).flatMap { Int(String(cString: $0)) }
    }

    /// In a worker process, serves jobs until the driver says goodbye or goes away, then exits the
    /// process; in any other process, returns at once.
    ///
    /// The worker arms the parent-death signal (and checks its parent is still the one that started
    /// it), ignores SIGPIPE, answers the driver's handshake with the names of `jobs`, and runs each
    /// submitted batch in order.
    ///
    /// - Parameter jobs: every job type this program can run in a worker.
    ///
    /// ## Cancellation
    /// A worker is cancelled by being killed; nothing in it waits on the caller's task.
    public static func runIfWorker(jobs: [any Job.Type]) async throws {
        try await runIfWorker(jobs: jobs, agent: nil)
    }

    /// As ``runIfWorker(jobs:)``, and in a node agent — a process started with `WORKERS_CONNECT`
    /// (by `srun`, by an SSH placement, by hand) — runs `agent` instead: with
    /// `import WorkersCluster`, pass `agent: .cluster`.
    ///
    /// - Parameters:
    ///   - jobs: every job type this program can run in a worker.
    ///   - agent: the node agent; `nil` makes an agent start an error that says what to pass.
    ///
    /// ## Cancellation
    /// A worker or an agent is cancelled by being killed or by its driver going away.
    public static func runIfWorker(jobs: [any Job.Type], agent: NodeAgentEntry?) async throws {
        if let id = workerID {
            let status = await serve(workerID: id, jobs: jobs)
            exit(status)
        }
        guard getenv(NodeAgentEntry.connectVariable) != nil else { return }
        guard let agent else {
            complain("started as a node agent (\(NodeAgentEntry.connectVariable) is set), but this program was built without one: pass `agent: .cluster` to runIfWorker, from WorkersCluster")
            exit(64)
        }
        exit(await agent.run(jobs))
    }

    /// The worker loop; returns the exit status: 0 after goodbye or when the driver closed the
    /// channel, 70–77 for a broken start or channel (77: the driver was silent for the agreed
    /// `lostAfter` while this worker waited for work).
    static func serve(workerID: Int, jobs: [any Job.Type]) async -> Int32 {
        _ = cworkers_set_parent_death_signal(SIGKILL)
        if let parent = getenv(parentVariable).flatMap({ Int32(String(cString: $0)) }), getppid() != parent {
            return 70  // the driver died before the death signal was armed
        }
        cworkers_ignore_sigpipe()
        if getenv(underAgentVariable) != nil {
            // Slurm signals every process of a step (`scancel --signal=TERM`, a walltime's
            // `--signal=USR1`): that is for the agent, which drains; its workers finish their batch.
            signal(SIGTERM, SIG_IGN)
            signal(SIGUSR1, SIG_IGN)
            signal(SIGINT, SIG_IGN)
        }
        var runners: [String: JobRunner] = [:]
        for job in jobs {
            let runner = makeRunner(job)
            runners[runner.name] = runner
        }
        var channel = FrameReader(readFD: 3, maxFrameSize: WireProtocol.defaultMaxFrameSize)
        let writer = FrameWriter(descriptor: 4)
        guard case .frame(let first) = channel.read(deadline: monotonicNanoseconds() + 30_000_000_000), first.kind == .hello,
              let hello = try? first.decode(Hello.self) else {
            complain("no hello from the driver: errno \(errno)")
            return 71
        }
        switch Handshake.answer(hello, jobNames: runners.keys.sorted(), processID: getpid()) {
        case .failure(let error):
            _ = writer.write(Frame(kind: .reject, payload: Array(error.description.utf8)))
            return 72
        case .success(let welcome):
            guard let frame = try? Frame(kind: .welcome, message: welcome), writer.write(frame) else {
                complain("could not send the handshake's welcome: errno \(errno)")
                return 73
            }
        }
        if hello.heartbeatMilliseconds > 0 {
            // From a thread of its own, so a long job (even one that never yields) keeps them going.
            let interval = UInt64(hello.heartbeatMilliseconds) * 1_000_000
            Thread.detachNewThread { sendHeartbeats(every: interval, to: writer) }
        }
        let lostAfter = UInt64(max(0, hello.lostAfterMilliseconds)) * 1_000_000
        while true {
            let deadline = lostAfter > 0 ? monotonicNanoseconds() + lostAfter : nil
            switch channel.read(deadline: deadline, spin: WorkerProcess.spinNanoseconds) {
            case .endOfFile:
                return 0
            case .timedOut:
                complain("the driver sent nothing for \(hello.lostAfterMilliseconds) ms; giving it up")
                return 77
            case .violation:
                return 74
            case .frame(let frame):
                switch frame.kind {
                case .goodbye:
                    return 0
                case .heartbeat:
                    continue
                case .submit:
                    guard let submit = try? frame.decode(Submit.self) else { return 75 }
                    let reply = await run(submit, runners: runners, requestID: frame.requestID)
                    guard writer.write(reply) else { return 0 }
                default:
                    return 76
                }
            }
        }
    }

    /// The heartbeat thread's loop: a heartbeat every `interval` until the process exits.
    private static func sendHeartbeats(every interval: UInt64, to writer: FrameWriter) {
        _ = cworkers_set_thread_name("workers-heartbeat")
        let beat = Frame(kind: .heartbeat)
        var next = monotonicNanoseconds() + interval
        while true {
            var request = timespec(tv_sec: Int(next / 1_000_000_000), tv_nsec: Int(next % 1_000_000_000))
            while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &request, nil) == EINTR {}
            guard writer.write(beat) else { return }  // the driver is gone; the main loop sees it too
            next += interval
            let now = monotonicNanoseconds()
            if next < now { next = now + interval }  // we were not scheduled for a while: no burst
        }
    }

    static func run(_ submit: Submit, runners: [String: JobRunner], requestID: UInt64) async -> Frame {
        guard let runner = runners[submit.jobName] else {
            let failure = JobFailure(index: 0, completed: [], errorType: unknownJobType, message: submit.jobName)
            return (try? Frame(kind: .failure, requestID: requestID, message: failure)) ?? Frame(kind: .failure, requestID: requestID)
        }
        do {
            let (count, outputs) = try await runner.run(submit.inputs)
            return try Frame(kind: .result, requestID: requestID, message: Outputs(count: count, outputs: outputs))
        } catch let failure as BatchFailure {
            let report = JobFailure(
                index: failure.index, completed: failure.completed,
                errorType: String(reflecting: type(of: failure.error)), message: String(describing: failure.error)
            )
            return (try? Frame(kind: .failure, requestID: requestID, message: report)) ?? Frame(kind: .failure, requestID: requestID)
        } catch {
            // The batch did not decode, or the outputs did not encode: the job cannot run here.
            let report = JobFailure(index: 0, completed: [], errorType: String(reflecting: type(of: error)), message: String(describing: error))
            return (try? Frame(kind: .failure, requestID: requestID, message: report)) ?? Frame(kind: .failure, requestID: requestID)
        }
    }

    static let unknownJobType = "WorkersProcesses.UnknownJob"

    /// A last word on stderr before a worker exits on a broken channel.
    static func complain(_ message: String) {
        let line = "workers: worker \(workerID ?? -1) (pid \(getpid())): \(message)\n"
        _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
    }
}

/// Writes whole frames to a blocking descriptor, one writer at a time: the worker's main loop
/// (answers) and its heartbeat thread share it.
final class FrameWriter: @unchecked Sendable {  // @unchecked: writes are serialised by `lock`.
    let descriptor: Int32
    private let lock = PthreadLock()

    init(descriptor: Int32) { self.descriptor = descriptor }

    /// Writes `frame` whole. Returns `false` if the peer has gone (EPIPE, or any write error).
    func write(_ frame: Frame) -> Bool {
        guard let bytes = try? frame.encoded() else { return false }
        return lock.withLock { DescriptorIO.write(bytes, to: descriptor, until: .max) }
    }
}

/// A job type with its batch decoding and encoding erased.
struct JobRunner: Sendable {
    let name: String
    /// Runs a batch (an encoded array of inputs); returns the count and the encoded outputs, or
    /// throws ``BatchFailure`` when the job throws.
    let run: @Sendable ([UInt8]) async throws -> (Int, [UInt8])
}

/// The job threw on input `index`; `completed` holds the encoded outputs before it.
struct BatchFailure: Error {
    var index: Int
    var completed: [UInt8]
    var error: any Error
}

func makeRunner<J: Job>(_ job: J.Type) -> JobRunner {
    JobRunner(name: J.name) { bytes in
        let inputs = try WireDecoder().decode([J.Input].self, from: bytes)
        var outputs: [J.Output] = []
        outputs.reserveCapacity(inputs.count)
        let job = J()
        // Plain indices, no tuples: this loop runs unspecialized (J is known only at run time),
        // where every tuple or enumerated iterator costs a metadata lookup per input.
        var index = 0
        while index < inputs.count {
            do {
                outputs.append(try await job.run(inputs[index]))
                index += 1
            } catch {
                throw BatchFailure(index: index, completed: try WireEncoder().encode(outputs), error: error)
            }
        }
        return (outputs.count, try WireEncoder().encode(outputs))
    }
}

/// A node agent's entry point, handed to ``WorkerProcess/runIfWorker(jobs:agent:)``; the one the
/// cluster placements use is `.cluster`, from `import WorkersCluster`.
public struct NodeAgentEntry: Sendable {
    /// The variable that makes a process a node agent: the driver's `HOST:PORT`, or `stdio`
    /// when the link is the process's standard input and output (an SSH placement).
    package static let connectVariable = "WORKERS_CONNECT"
    package let run: @Sendable ([any Job.Type]) async -> Int32

    /// An entry point that runs the agent and returns its exit status.
    package init(run: @escaping @Sendable ([any Job.Type]) async -> Int32) {
        self.run = run
    }
}
