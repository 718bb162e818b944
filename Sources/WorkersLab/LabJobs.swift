#if canImport(Glibc)
import Glibc
#endif
import WorkersCore

/// The lab's work as ``Job``s, so the process modes run exactly what the thread modes run. The
/// `workers` program hands them to ``WorkerProcess/runIfWorker(jobs:)`` first thing in `main`.
public enum LabJobs {
    /// Every job the lab submits to a process pool.
    public static let all: [any Job.Type] = [KernelJob.self, SleepJob.self, RequestJob.self, BurnForJob.self, DataJob.self]
}

/// When and where a job ran: its worker's pid and CLOCK_MONOTONIC nanoseconds.
public struct JobTiming: Codable, Sendable {
    /// The worker's process id.
    public var pid: Int32
    /// When the job started (CLOCK_MONOTONIC, nanoseconds).
    public var start: UInt64
    /// When the job ended (CLOCK_MONOTONIC, nanoseconds).
    public var end: UInt64
}

/// The CPU kernel on one task.
public struct KernelJob: Job {
    /// Which task (its seed) and how many kernel steps.
    public struct Input: Codable, Sendable {
        /// The task's seed (task index + 1).
        public var seed: UInt64
        /// Kernel steps to run.
        public var iterations: Int
    }

    /// The checksum and when and where it ran.
    public struct Output: Codable, Sendable {
        /// The kernel's checksum.
        public var checksum: UInt64
        /// When and where it ran.
        public var timing: JobTiming
    }

    /// The wire name.
    public static let name = "lab.kernel"
    /// Creates the job where it runs.
    public init() {}

    /// Runs the kernel.
    ///
    /// ## Cancellation
    /// Not checked: the kernel runs to its end (a process pool stops it by killing the worker).
    public func run(_ input: Input) async throws -> Output {
        let start = monotonicNanoseconds()
        let checksum = Kernel.run(seed: input.seed, iterations: input.iterations)
        return Output(checksum: checksum, timing: JobTiming(pid: getpid(), start: start, end: monotonicNanoseconds()))
    }
}

/// A blocking sleep of `input` seconds.
public struct SleepJob: Job {
    /// The wire name.
    public static let name = "lab.sleep"
    /// Creates the job where it runs.
    public init() {}

    /// Sleeps (a blocking call).
    ///
    /// ## Cancellation
    /// Not checked: the sleep runs to its end.
    public func run(_ input: Double) async throws -> JobTiming {
        let start = monotonicNanoseconds()
        blockingSleep(seconds: input)
        return JobTiming(pid: getpid(), start: start, end: monotonicNanoseconds())
    }
}

/// One request to the lab's loopback server on port `input`.
public struct RequestJob: Job {
    /// The wire name.
    public static let name = "lab.request"
    /// Creates the job where it runs.
    public init() {}

    /// Makes one request (blocking calls).
    ///
    /// ## Cancellation
    /// Not checked: the request runs to its end (the server answers within its latency).
    public func run(_ input: UInt16) async throws -> JobTiming {
        let start = monotonicNanoseconds()
        try blockingRequest(port: input)
        return JobTiming(pid: getpid(), start: start, end: monotonicNanoseconds())
    }
}

/// The CPU kernel, over and over, for `input` seconds: the busy neighbour of the mixed workload.
public struct BurnForJob: Job {
    /// The checksum and when and where it ran.
    public struct Output: Codable, Sendable {
        /// The kernel's checksum.
        public var checksum: UInt64
        /// When and where it ran.
        public var timing: JobTiming
    }

    /// The wire name.
    public static let name = "lab.burn-for"
    /// Creates the job where it runs.
    public init() {}

    /// Burns CPU for `input` seconds.
    ///
    /// ## Cancellation
    /// Not checked: it runs for its time (a process pool stops it by killing the worker).
    public func run(_ input: Double) async throws -> Output {
        let start = monotonicNanoseconds()
        let deadline = start + UInt64(max(0, input) * 1e9)
        var checksum: UInt64 = 0
        var seed: UInt64 = 1
        while monotonicNanoseconds() < deadline {
            checksum ^= Kernel.run(seed: seed, iterations: Kernel.checkpointEvery * 16)
            seed &+= 1
        }
        return Output(checksum: checksum, timing: JobTiming(pid: getpid(), start: start, end: monotonicNanoseconds()))
    }
}

/// The data-heavy workload's task: reads and rewrites every `stride`-th byte of its input (a
/// running hash of the bytes read so far), and sends the block back. Little work per byte, so in
/// another process the moving of the bytes is most of the cost.
public struct DataJob: Job {
    /// The block and the stride.
    public struct Input: Codable, Sendable {
        /// The bytes to work on.
        public var block: [UInt8]
        /// Every `stride`-th byte is read and rewritten.
        public var stride: Int
    }

    /// The wire name.
    public static let name = "lab.data"
    /// Creates the job where it runs.
    public init() {}

    /// The work itself, the same on threads and in processes.
    public static func transform(_ block: [UInt8], stride: Int) -> [UInt8] {
        var out = block
        var hash: UInt32 = 0
        out.withUnsafeMutableBufferPointer { bytes in
            var index = 0
            while index < bytes.count {
                hash = hash &* 31 &+ UInt32(bytes[index])
                bytes[index] ^= UInt8(truncatingIfNeeded: hash)
                index += max(1, stride)
            }
        }
        return out
    }

    /// Transforms the block.
    ///
    /// ## Cancellation
    /// Not checked: one pass over the block runs to its end.
    public func run(_ input: Input) async throws -> [UInt8] {
        Self.transform(input.block, stride: input.stride)
    }
}
