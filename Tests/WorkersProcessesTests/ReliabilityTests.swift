#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import WorkersTestJobs
import WorkersCore
import WorkersWire
@testable import WorkersProcesses

/// Whether `pid` is gone: no such process, or a zombie waiting for whoever adopted it.
func isGone(_ pid: Int32) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return true }
    guard let close = stat.lastIndex(of: ")") else { return true }
    let state = stat[stat.index(close, offsetBy: 2)]
    return state == "Z" || state == "X"
}

/// The limit guards against a hang, not a speed: under ThreadSanitizer with the whole suite beside
/// it, the 10,000-job test took 186 s in two CI runs, just over the old 3 minutes, with every job
/// still answered.
@Suite(.timeLimit(.minutes(6))) struct ReliabilityTests {
    /// Every job of `count`, a share of which kill their worker, ends exactly once: the crashing
    /// ones as `workerCrashed` with exit status 9, the others with their value.
    static func crashAccounting(count: Int, crashEvery: Int) async throws {
        let pool = try await makePool(workers: 2)
        let outcomes = try await withThrowingTaskGroup(of: (Int, Result<Int, any Error>).self) { group in
            var next = 0
            var outcomes: [Int: Result<Int, any Error>] = [:]
            func add() {
                let index = next
                next += 1
                group.addTask {
                    let input = CrashIf.Input(value: index, crash: index % crashEvery == crashEvery / 2)
                    do { return (index, .success(try await pool.run(CrashIf.self, input))) } catch { return (index, .failure(error)) }
                }
            }
            while next < min(count, 16) { add() }
            while let (index, outcome) = try await group.next() {
                #expect(outcomes[index] == nil, "input \(index) ended twice")
                outcomes[index] = outcome
                if next < count { add() }
            }
            return outcomes
        }
        #expect(outcomes.count == count)
        for (index, outcome) in outcomes {
            let crashes = index % crashEvery == crashEvery / 2
            switch outcome {
            case .success(let value):
                #expect(!crashes && value == index)
            case .failure(let error as ProcessPoolError):
                #expect(crashes, "input \(index): \(error)")
                #expect(error.code == .workerCrashed(signal: nil, exitCode: 9))
            case .failure(let error):
                Issue.record("input \(index): unexpected \(error)")
            }
        }
        await pool.shutdown()
        #expect(pool.workerInfo.allSatisfy { $0.processID == nil })
    }

    @Test func everyJobIsAccountedForOnceWhenSomeCrash() async throws {
        try await Self.crashAccounting(count: 400, crashEvery: 20)
    }

    @Test(.enabled(if: ProcessInfo.processInfo.environment["WORKERS_STRESS"] == "1"))
    func tenThousandJobsWithTwoPercentCrashes() async throws {
        try await Self.crashAccounting(count: 10_000, crashEvery: 50)
    }

    @Test func killingTheDriverLeavesNoWorkerAlive() async throws {
        let driver = Process()
        driver.executableURL = URL(fileURLWithPath: workerExecutable)
        driver.arguments = ["driver"]
        let output = Pipe()
        driver.standardOutput = output
        try driver.run()
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line.append(chunk)
        }
        let pids = String(decoding: line, as: UTF8.self).split(whereSeparator: \.isWhitespace).compactMap { Int32($0) }
        #expect(pids.count == 2)
        for pid in pids { #expect(!isGone(pid)) }
        kill(driver.processIdentifier, SIGKILL)
        driver.waitUntilExit()
        let deadline = ContinuousClock.now.advanced(by: .seconds(1))
        while !pids.allSatisfy(isGone), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        for pid in pids { #expect(isGone(pid), "worker \(pid) outlived its driver by 1 s") }
    }

    @Test func manyPoolsStartedAndStoppedLeaveNoDescriptorsBehind() async throws {
        let before = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count
        let cycles = 30
        for _ in 0..<cycles {
            let pool = try await makePool(workers: 2)
            _ = try? await pool.run(ExitNow.self, 1)  // one restart each
            #expect(try await pool.run(Square.self, 2) == 4)
            await pool.shutdown()
        }
        let after = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count
        // A leaked pipe would add at least 2 descriptors a cycle (60 here); other tests running
        // alongside hold a bounded few of their own.
        #expect(after - before < cycles)
    }
}

/// Garbage in the other direction: a worker fed bad frames by its driver exits with a status that
/// names the fault; it neither hangs nor crashes.
@Suite(.timeLimit(.minutes(1))) struct WorkerInputTests {
    enum Garbage: CaseIterable {
        case randomBytes, unknownKind, oversizedLength, undecodableSubmit, unexpectedKind
    }

    @Test(arguments: Garbage.allCases)
    func aWorkerFedGarbageExitsWithAProtocolStatus(_ garbage: Garbage) async throws {
        let bytes: [UInt8]
        let expected: Int32
        switch garbage {
        case .randomBytes:
            bytes = [0, 0, 0, 9, 0xEE] + [UInt8](repeating: 0xAB, count: 8)
            expected = 74
        case .unknownKind:
            bytes = [0, 0, 0, 9, 200, 0, 0, 0, 0, 0, 0, 0, 1]
            expected = 74
        case .oversizedLength:
            bytes = [0x7F, 0xFF, 0xFF, 0xFF, 4, 0, 0, 0, 0, 0, 0, 0, 1]
            expected = 74
        case .undecodableSubmit:
            bytes = try Frame(kind: .submit, requestID: 1, payload: [0xFF, 0x00, 0x13]).encoded()
            expected = 75
        case .unexpectedKind:
            bytes = try Frame(kind: .welcome, requestID: 1).encoded()
            expected = 76
        }
        // The exchange blocks (a spawn, a read with a deadline): it runs on a thread of its own.
        let outcome: (written: Int, closed: Bool, signal: Int32?, exitCode: Int32?) = try await onOwnThread {
            let (link, _) = try startedWorker()
            let written = bytes.withUnsafeBytes { write(link.outputDescriptor, $0.baseAddress, $0.count) }
            guard waitForEndOfStream(link.inputDescriptor, seconds: 10) else {
                link.terminate()
                return (written, false, nil, nil)
            }
            guard case .workerCrashed(let signal, let exitCode) = link.reap() else { return (written, true, nil, nil) }
            return (written, true, signal, exitCode)
        }
        #expect(outcome.written == bytes.count)
        #expect(outcome.closed, "the worker did not close its channel within 10 s")
        #expect(outcome.signal == nil)
        #expect(outcome.exitCode == expected)
    }
}

/// A test worker process started and shaken hands with, as a pool's slot would.
func startedWorker(heartbeat: Heartbeat = .standard) throws -> (any WorkerLink, FrameDecoder) {
    let link = try ChildProcessLauncher(executable: workerExecutable).launch(slot: 0)
    var decoder = FrameDecoder(maxFrameSize: 1 << 20)
    let hello = Hello(
        workerID: 0, jobNames: TestJobs.all.map { $0.name }, maxFrameSize: 1 << 20,
        heartbeatMilliseconds: heartbeat.intervalMilliseconds, lostAfterMilliseconds: heartbeat.lostAfterMilliseconds
    )
    try LinkHandshake.run(link, hello: hello, decoder: &decoder, timeout: .seconds(30))
    return (link, decoder)
}

/// Reads and drops what comes on non-blocking `descriptor` until it ends; `false` after `seconds`.
func waitForEndOfStream(_ descriptor: Int32, seconds: Int) -> Bool {
    DescriptorIO.waitForEndOfStream(descriptor, until: monotonicNanoseconds() + UInt64(seconds) * 1_000_000_000)
}

/// Runs blocking `body` on a thread of its own, so waiting for it holds no cooperative thread.
func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}

/// Worker restarts by the thousand (`maxJobsPerWorker: 1`, one job a chunk) leave no descriptor
/// and no process behind. 300 in the default suite; CI runs 10,000 with `WORKERS_RESTARTS=10000`.
@Suite(.timeLimit(.minutes(20))) struct RestartLeakTests {
    @Test func thousandsOfRestartsLeaveNoDescriptorOrProcessBehind() async throws {
        let restarts = ProcessInfo.processInfo.environment["WORKERS_RESTARTS"].flatMap(Int.init) ?? 300
        // Workers run under a name of their own (a symlink), so this test can find every process
        // it started, alive or zombie, by the kernel's `comm` even while other tests run.
        let name = "wr\(getpid() % 100_000)r\(Int.random(in: 100..<1000))"
        let link = FileManager.default.temporaryDirectory.appendingPathComponent(name).path
        try? FileManager.default.removeItem(atPath: link)
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: workerExecutable)
        defer { try? FileManager.default.removeItem(atPath: link) }

        let before = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count
        let pool = try await ProcessPool(workers: 2, jobs: TestJobs.all, executable: link, maxJobsPerWorker: 1)
        let outputs = try await pool.map(Square.self, Array(0..<restarts), chunkSize: 1)
        #expect(outputs == (0..<restarts).map { $0 * $0 })
        #expect(pool.workerInfo.map(\.restarts).reduce(0, +) >= restarts - 2)
        await pool.shutdown()
        let after = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count
        // A leak of one descriptor a restart would add `restarts`; other tests hold a few.
        #expect(after - before < 40, "descriptors: \(before) before, \(after) after \(restarts) restarts")
        #expect(processes(named: name).isEmpty, "left behind: \(processes(named: name))")
    }

    /// Pids of processes (including zombies) whose `comm` is `name`.
    private func processes(named name: String) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { pid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")") else { return false }
            return stat[stat.index(after: open)..<close] == name
        }
    }
}

/// A pool dropped without `shutdown()` does not leave its workers behind.
@Suite(.timeLimit(.minutes(1))) struct DroppedPoolTests {
    @Test func aDroppedPoolStopsItsWorkers() async throws {
        var pool: ProcessPool? = try await makePool(workers: 2)
        let pids = pool!.workerInfo.compactMap(\.processID)
        #expect(try await pool!.run(Square.self, 3) == 9)
        pool = nil
        // No event tells the test a process has gone: poll /proc, bounded.
        let deadline = ContinuousClock.now.advanced(by: .seconds(10))
        while !pids.allSatisfy(isGone), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        for pid in pids { #expect(isGone(pid), "worker \(pid) outlived its dropped pool") }
    }
}
