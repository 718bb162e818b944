#if canImport(Glibc)
import Glibc
#endif
import Foundation
import WorkersCore
import WorkersProcesses

/// Jobs the process-pool tests run in `WorkersTestWorker`: well-behaved ones and every way a job
/// can go wrong.
public enum TestJobs {
    public static let all: [any Job.Type] = [
        Square.self, Echo.self, Nap.self, Trap.self, Fail.self, ExitNow.self, Garbage.self, WhoAmI.self, Spin.self, CrashIf.self, CrashOnce.self, Hog.self,
        Pace.self,
    ]
}

public struct Square: Job {
    public static let name = "square"
    public init() {}
    public func run(_ input: Int) async throws -> Int { input * input }
}

public struct Echo: Job {
    public static let name = "echo"
    public init() {}
    public func run(_ input: [UInt8]) async throws -> [UInt8] { input }
}

/// Sleeps `input` milliseconds, then returns the worker's pid.
public struct Nap: Job {
    public static let name = "nap"
    public init() {}
    public func run(_ input: Int) async throws -> Int32 {
        usleep(UInt32(input) * 1000)
        return getpid()
    }
}

/// Sleeps `input` milliseconds times the worker's pace (`WORKERS_TEST_PACE`, default 1), and
/// returns the pace: a slow host, in a test, is an agent started with a larger one.
public struct Pace: Job {
    public static let name = "pace"
    public init() {}
    public func run(_ input: Int) async throws -> Int {
        let pace = getenv("WORKERS_TEST_PACE").flatMap { Int(String(cString: $0)) } ?? 1
        usleep(UInt32(input * pace) * 1000)
        return pace
    }
}

/// Traps (a Swift runtime failure) when the input is true.
public struct Trap: Job {
    public static let name = "trap"
    public init() {}
    public func run(_ input: Bool) async throws -> Int {
        let values: [Int] = []
        return input ? values[1] : 0
    }
}

public struct Failure: Error, CustomStringConvertible {
    public var value: Int
    public var description: String { "failure \(value)" }
}

/// Throws for negative inputs.
public struct Fail: Job {
    public static let name = "fail"
    public init() {}
    public func run(_ input: Int) async throws -> Int {
        if input < 0 { throw Failure(value: input) }
        return input
    }
}

/// Exits the worker with the input as status.
public struct ExitNow: Job {
    public static let name = "exit"
    public init() {}
    public func run(_ input: Int32) async throws -> Int { exit(input) }
}

/// Writes garbage on the worker's channel, then waits to be killed.
public struct Garbage: Job {
    public static let name = "garbage"
    public init() {}
    public func run(_ input: Int) async throws -> Int {
        let junk = [UInt8](repeating: 0xFF, count: 64)
        _ = junk.withUnsafeBytes { write(4, $0.baseAddress, $0.count) }
        sleep(30)
        return 0
    }
}

/// The worker's id and pid.
public struct WhoAmI: Job {
    public static let name = "who-am-i"
    public init() {}
    public func run(_ input: Int) async throws -> [Int] { [WorkerProcess.workerID ?? -1, Int(getpid())] }
}

/// Burns CPU for `input` milliseconds.
public struct Spin: Job {
    public static let name = "spin"
    public init() {}
    public func run(_ input: Int) async throws -> UInt64 {
        let end = ContinuousClock.now.advanced(by: .milliseconds(input))
        var x: UInt64 = 1
        while ContinuousClock.now < end {
            for _ in 0..<10_000 { x = x &* 6364136223846793005 &+ 1442695040888963407 }
        }
        return x
    }
}

/// Returns its value, or kills its worker (exit status 9) when `crash` is set.
public struct CrashIf: Job {
    public struct Input: Codable, Sendable {
        public var value: Int
        public var crash: Bool
        public init(value: Int, crash: Bool) {
            self.value = value
            self.crash = crash
        }
    }

    public static let name = "crash-if"
    public init() {}
    public func run(_ input: Input) async throws -> Int {
        if input.crash { exit(9) }
        return input.value
    }
}

/// Kills its worker the first time it sees `path` (creating the file), and returns 1 after that.
public struct CrashOnce: Job {
    public static let name = "crash-once"
    public init() {}
    public func run(_ path: String) async throws -> Int {
        if access(path, F_OK) != 0 {
            let fd = open(path, O_CREAT | O_WRONLY, 0o600)
            close(fd)
            exit(9)
        }
        return 1
    }
}

/// Allocates and touches `input` MiB, a MiB at a time, then returns how many it held.
public struct Hog: Job {
    public static let name = "hog"
    public init() {}
    public func run(_ input: Int) async throws -> Int {
        var blocks: [[UInt8]] = []
        for index in 0..<input {
            blocks.append([UInt8](repeating: UInt8(truncatingIfNeeded: index | 1), count: 1 << 20))
            if index % 16 == 0 { usleep(1000) }
        }
        return blocks.count
    }
}

/// Where the test programs are: the test worker executable and the `workers` command, next to
/// the test bundle in the build folder.
public enum TestPrograms {
    public static let worker: String = built("WorkersTestWorker")
    public static let workers: String = built("workers")

    /// `name` in the first folder above the test bundle that has it.
    static func built(_ name: String) -> String {
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: directory.appendingPathComponent(name).path), directory.path != "/" {
            directory.deleteLastPathComponent()
        }
        return directory.appendingPathComponent(name).path
    }
}

/// Runs blocking `body` on a thread of its own and waits for it without holding a cooperative thread.
public func offThePool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}

/// Writes `text` to `path` as an executable (mode 0755) through a close-on-exec descriptor.
/// Foundation's writes leave the descriptor open to any process another test forks meanwhile,
/// and while one holds it open for writing, exec of the file fails with "Text file busy"
/// (ETXTBSY): a test that runs its own script must write it this way.
public func writeExecutable(_ text: String, to path: String) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o755)
    guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    defer { close(fd) }
    let bytes = Array(text.utf8)
    var written = 0
    while written < bytes.count {
        let count = bytes[written...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        if count < 0, errno == EINTR { continue }
        guard count > 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        written += count
    }
    // O_CREAT's mode applies only to a new file, and then under the umask.
    fchmod(fd, 0o755)
}
