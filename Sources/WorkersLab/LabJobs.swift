#if canImport(Glibc)
import Glibc
#endif
import WorkersCore

/// The lab's work as ``Job``s, so the process modes run exactly what the thread modes run. The
/// `workers` program hands them to ``WorkerProcess/runIfWorker(jobs:)`` first thing in `main`.
public enum LabJobs {
    /// Every job the lab submits to a process pool.
    public static let all: [any Job.Type] = [KernelJob.self, SleepJob.self, RequestJob.self, BurnForJob.self]
}

/// When and where a job ran: its worker's pid and CLOCK_MONOTONIC nanoseconds.
public struct JobTiming: Codable, Sendable {
    public var pid: Int32
    public var start: UInt64
    public var end: UInt64
}

/// The CPU kernel on one task.
public struct KernelJob: Job {
    public struct Input: Codable, Sendable {
        public var seed: UInt64
        public var iterations: Int
    }

    public struct Output: Codable, Sendable {
        public var checksum: UInt64
        public var timing: JobTiming
    }

    public static let name = "lab.kernel"
    public init() {}

    public func run(_ input: Input) async throws -> Output {
        let start = monotonicNanoseconds()
        let checksum = Kernel.run(seed: input.seed, iterations: input.iterations)
        return Output(checksum: checksum, timing: JobTiming(pid: getpid(), start: start, end: monotonicNanoseconds()))
    }
}

/// A blocking sleep of `input` seconds.
public struct SleepJob: Job {
    public static let name = "lab.sleep"
    public init() {}

    public func run(_ input: Double) async throws -> JobTiming {
        let start = monotonicNanoseconds()
        blockingSleep(seconds: input)
        return JobTiming(pid: getpid(), start: start, end: monotonicNanoseconds())
    }
}

/// One request to the lab's loopback server on port `input`.
public struct RequestJob: Job {
    public static let name = "lab.request"
    public init() {}

    public func run(_ input: UInt16) async throws -> JobTiming {
        let start = monotonicNanoseconds()
        try blockingRequest(port: input)
        return JobTiming(pid: getpid(), start: start, end: monotonicNanoseconds())
    }
}

/// The CPU kernel, over and over, for `input` seconds: the busy neighbour of the mixed workload.
public struct BurnForJob: Job {
    public struct Output: Codable, Sendable {
        public var checksum: UInt64
        public var timing: JobTiming
    }

    public static let name = "lab.burn-for"
    public init() {}

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
