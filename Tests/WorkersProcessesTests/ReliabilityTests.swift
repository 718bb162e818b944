#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import WorkersTestJobs
@testable import WorkersProcesses

/// Whether `pid` is gone: no such process, or a zombie waiting for whoever adopted it.
func isGone(_ pid: Int32) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return true }
    guard let close = stat.lastIndex(of: ")") else { return true }
    let state = stat[stat.index(close, offsetBy: 2)]
    return state == "Z" || state == "X"
}

@Suite(.timeLimit(.minutes(3))) struct ReliabilityTests {
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
