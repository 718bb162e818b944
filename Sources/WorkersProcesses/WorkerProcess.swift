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
    static let idVariable = "WORKERS_WORKER_ID"
    static let parentVariable = "WORKERS_PARENT_PID"
    /// How long each side of the channel polls before it blocks (`WORKERS_SPIN_US` overrides, in µs).
    static let spinNanoseconds: UInt64 = ProcessInfo.processInfo.environment["WORKERS_SPIN_US"].flatMap(UInt64.init).map { $0 * 1_000 } ?? 50_000

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
        guard let id = workerID else { return }
        let status = await serve(workerID: id, jobs: jobs)
        exit(status)
    }

    /// The worker loop; returns the exit status.
    static func serve(workerID: Int, jobs: [any Job.Type]) async -> Int32 {
        _ = cworkers_set_parent_death_signal(SIGKILL)
        if let parent = getenv(parentVariable).flatMap({ Int32(String(cString: $0)) }), getppid() != parent {
            return 70  // the driver died before the death signal was armed
        }
        cworkers_ignore_sigpipe()
        var runners: [String: JobRunner] = [:]
        for job in jobs {
            let runner = makeRunner(job)
            runners[runner.name] = runner
        }
        var channel = FrameChannel(readFD: 3, writeFD: 4, maxFrameSize: WireProtocol.defaultMaxFrameSize)
        guard case .frame(let first) = channel.read(), first.kind == .hello, let hello = try? first.decode(Hello.self) else {
            complain("no hello from the driver: errno \(errno)")
            return 71
        }
        switch Handshake.answer(hello, jobNames: runners.keys.sorted(), processID: getpid()) {
        case .failure(let error):
            _ = channel.write(Frame(kind: .reject, payload: Array(error.description.utf8)))
            return 72
        case .success(let welcome):
            guard let frame = try? Frame(kind: .welcome, message: welcome), channel.write(frame) else {
                complain("could not send the handshake's welcome: errno \(errno)")
                return 73
            }
        }
        while true {
            switch channel.read(spin: WorkerProcess.spinNanoseconds) {
            case .endOfFile:
                return 0
            case .timedOut, .violation:
                return 74
            case .frame(let frame):
                switch frame.kind {
                case .goodbye:
                    return 0
                case .submit:
                    guard let submit = try? frame.decode(Submit.self) else { return 75 }
                    let reply = await run(submit, runners: runners, requestID: frame.requestID)
                    guard channel.write(reply) else { return 0 }
                default:
                    return 76
                }
            }
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
