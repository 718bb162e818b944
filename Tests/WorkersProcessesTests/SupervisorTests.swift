#if canImport(Glibc)
import Glibc
#endif
import CWorkersShims
import Foundation
import Testing
import WorkersCore
import WorkersTestJobs
import WorkersWire
@testable import WorkersProcesses

/// How much longer the heartbeat tests give silence in the stress run under ThreadSanitizer,
/// where the whole suite shares two cores with the sanitizer and a healthy peer's heartbeat
/// thread can be starved for hundreds of milliseconds.
let heartbeatScale: Int64 = ProcessInfo.processInfo.environment["WORKERS_STRESS"] == "1" ? 3 : 1

/// The supervisor over socketpair links to in-process workers: no child process anywhere, so the
/// link seam is what these tests stand on.
@Suite(.timeLimit(.minutes(2))) struct SupervisorTests {
    /// With `prefetch` 1 each link carries a second batch behind the one its worker runs.
    @Test(arguments: [0, 1])
    func runsBatchesOverSocketPairLinks(prefetch: Int) async throws {
        let pool = try await SocketPairPool(workers: 2, prefetch: prefetch) { .answer($0 * 3) }
        #expect(try await pool.run(5) == 15)
        let results = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
            for input in 0..<200 { group.addTask { (input, try await pool.run(input)) } }
            var results: [Int: Int] = [:]
            for try await (input, output) in group { results[input] = output }
            return results
        }
        #expect(results.count == 200 && results.allSatisfy { $0.value == $0.key * 3 })
        await pool.shutdown()
        #expect(pool.supervisor.info.allSatisfy { $0.processID == nil && !$0.isBusy })
    }

    @Test func aClosedLinkCostsOneBatchAndIsReplaced() async throws {
        let pool = try await SocketPairPool(workers: 1) { $0 < 0 ? .crash : .answer($0) }
        await #expect(throws: ProcessPoolError(.workerCrashed(signal: nil, exitCode: 0), jobName: "script")) { try await pool.run(-1) }
        #expect(try await pool.run(4) == 4)
        #expect(pool.launcher.launched == 2)
        await pool.shutdown()
    }

    @Test(arguments: [SocketPairLauncher.Step.garbage, .unknownKind, .submitFrame])
    func garbageFromAPeerIsAProtocolViolation(_ step: SocketPairLauncher.Step) async throws {
        let pool = try await SocketPairPool(workers: 1) { $0 < 0 ? step : .answer($0) }
        do {
            _ = try await pool.run(-1)
            Issue.record("expected a protocol violation")
        } catch let error as ProcessPoolError {
            guard case .protocolViolation = error.code else { Issue.record("got \(error)"); return }
        }
        #expect(try await pool.run(7) == 7)
        await pool.shutdown()
    }

    /// A result that does not hold its batch's outputs is the worker's fault, charged to the
    /// batch it answered: with no retries that batch fails with `.protocolViolation` (it is not
    /// re-queued for ever, and no batch behind it takes the blame), and the pool carries on.
    @Test(arguments: [0, 1])
    func aMalformedResultFailsTheBatchItAnswers(prefetch: Int) async throws {
        let pool = try await SocketPairPool(workers: 1, prefetch: prefetch) { $0 < 0 ? .wrongCount : .answer($0) }
        async let behind = pool.run(5)  // with prefetch, sent behind the bad one
        do {
            _ = try await pool.run(-1)
            Issue.record("a malformed result was taken")
        } catch let error as ProcessPoolError {
            guard case .protocolViolation(let detail) = error.code else { Issue.record("got \(error)"); return }
            #expect(detail.contains("malformed result"))
        }
        #expect(try await behind == 5)
        #expect(pool.launcher.launched == 2)
        await pool.shutdown()
    }

    /// A peer that stops sending anything, heartbeats included, is declared lost after
    /// `lostAfter`; its batch fails with `.workerLost` (or is retried), and the pool carries on.
    @Test func aSilentPeerIsLostAfterLostAfter() async throws {
        // lostAfter leaves room for a loaded machine (ThreadSanitizer, the suite in parallel) to
        // delay a healthy peer's heartbeats without a false loss.
        let heartbeat = Heartbeat(interval: .milliseconds(25), lostAfter: .milliseconds(500 * heartbeatScale))
        let pool = try await SocketPairPool(workers: 1, heartbeat: heartbeat) { $0 < 0 ? .fallSilent : .answer($0) }
        let start = ContinuousClock.now
        await #expect(throws: ProcessPoolError(.workerLost, jobName: "script")) { try await pool.run(-1) }
        let took = start.duration(to: .now)
        #expect(took >= heartbeat.lostAfter - .milliseconds(50))  // not before lostAfter (less the last beat's age)
        #expect(try await pool.run(8) == 8)
        await pool.shutdown()

        let retrying = try await SocketPairPool(workers: 1, heartbeat: heartbeat, retry: RetryPolicy(maxAttempts: 2)) { _ in .fallSilent }
        await #expect(throws: ProcessPoolError(.workerLost, jobName: "script")) { try await retrying.run(1) }
        #expect(retrying.launcher.launched >= 2)  // the retry ran on a fresh link
        await retrying.shutdown()
    }

    /// A peer that speaks another protocol version is refused with both versions in the error.
    @Test func aWelcomeOfAnotherVersionIsRefusedNamingBoth() async throws {
        await #expect {
            _ = try await SocketPairPool(workers: 1, welcomeVersion: 1) { .answer($0) }
        } throws: { error in
            guard let error = error as? ProcessPoolError, case .protocolViolation(let detail) = error.code else { return false }
            return detail.contains("protocol version 1, expected \(WireProtocol.version)")
        }
    }

    /// Target (g): cancellations raced against answers never fail an innocent batch. Every other
    /// batch is cancelled at a random moment around its answer; the rest must all succeed. With
    /// `prefetch` 1, a cancelled batch may be the one waiting behind an innocent one, whose
    /// worker is then killed: the innocent batch runs again, and still succeeds with no retries.
    @Test(arguments: [0, 1])
    func tenThousandCancellationsRacedAgainstAnswersFailNoInnocentBatch(prefetch: Int) async throws {
        let count = ProcessInfo.processInfo.environment["WORKERS_STRESS"] == "1" ? 10_000 : 2_000
        let pool = try await SocketPairPool(workers: 2, prefetch: prefetch) { .answer($0) }
        let (innocentFailures, cancelled) = try await withThrowingTaskGroup(of: (Bool, Bool).self) { group in
            var next = 0
            var innocentFailures = 0
            var cancelled = 0
            func add() {
                let input = next
                next += 1
                let cancel = input % 2 == 0
                let yields = Int.random(in: 0..<4)
                group.addTask {
                    let task = Task { try await pool.run(input) }
                    if cancel {
                        for _ in 0..<yields { await Task.yield() }
                        task.cancel()
                    }
                    switch await task.result {
                    case .success(let value): return (value != input, false)
                    case .failure(is CancellationError): return (!cancel, true)
                    case .failure: return (true, false)  // a cancelled batch ends cancelled or answered, never failed
                    }
                }
            }
            while next < min(count, 64) { add() }
            while let (failedInnocent, wasCancelled) = try await group.next() {
                if failedInnocent { innocentFailures += 1 }
                if wasCancelled { cancelled += 1 }
                if next < count { add() }
            }
            return (innocentFailures, cancelled)
        }
        #expect(innocentFailures == 0, "\(innocentFailures) batches failed that should not have")
        #expect(cancelled > 0)  // the race was run, not only the easy half
        await pool.shutdown()
    }

    /// A late kill (asked after the answer) is carried out by no one: the worker that answered
    /// keeps serving, and nothing is relaunched.
    @Test func cancelsAfterTheAnswerLaunchNothing() async throws {
        let pool = try await SocketPairPool(workers: 1) { .answer($0) }
        for input in 0..<500 {
            let task = Task { try await pool.run(input) }
            let value = try await task.value
            task.cancel()  // after the answer: a no-op
            #expect(value == input)
        }
        #expect(pool.launcher.launched == 1)
        await pool.shutdown()
    }
}

/// The pipe link's heartbeats and version checks, with real worker processes.
@Suite(.timeLimit(.minutes(2))) struct HeartbeatTests {
    /// Target (f): a worker stopped with SIGSTOP in the middle of a job sends no heartbeat; it is
    /// declared lost after `lostAfter`, killed, and replaced.
    @Test func aStoppedWorkerIsDeclaredLostAndReplaced() async throws {
        let heartbeat = Heartbeat(interval: .milliseconds(50), lostAfter: .milliseconds(600 * heartbeatScale))
        let pool = try await ProcessPool(workers: 1, jobs: TestJobs.all, executable: workerExecutable, heartbeat: heartbeat)
        let napping = Task { try await pool.run(Nap.self, 20_000) }
        await untilBusy(pool)
        // The pid of the worker running the nap, read once it runs it: read straight after the
        // pool starts, a worker starved past lostAfter (ThreadSanitizer, the suite beside it) may
        // already be being replaced, with no pid (seen once in CI).
        let pid = try #require(pool.workerInfo[0].processID)
        kill(pid, SIGSTOP)
        let stopped = ContinuousClock.now
        await #expect(throws: ProcessPoolError(.workerLost, jobName: "nap")) { try await napping.value }
        // Silence began at the last heartbeat before the stop: up to an interval (and a late
        // wake-up) earlier. Declared lost no sooner than that plus lostAfter.
        #expect(stopped.duration(to: .now) >= heartbeat.lostAfter - .milliseconds(100))
        #expect(isGone(pid))
        #expect(try await pool.run(Square.self, 9) == 81)
        // At least the one replacement. Under ThreadSanitizer with the suite in parallel, a
        // starved replacement can miss a 600 ms lostAfter too; the default is 10 s.
        #expect(pool.workerInfo[0].restarts >= 1)
        await pool.shutdown()
    }

    /// A long job keeps its worker's heartbeats going: it is not mistaken for a silent one.
    @Test func aLongJobKeepsItsWorkerAlive() async throws {
        // Short enough that the jobs outlast it several times over; long enough that a loaded
        // machine (ThreadSanitizer, the suite in parallel) delaying a heartbeat is no loss.
        let heartbeat = Heartbeat(interval: .milliseconds(100), lostAfter: .milliseconds(1_000 * heartbeatScale))
        let pool = try await ProcessPool(workers: 1, jobs: TestJobs.all, executable: workerExecutable, heartbeat: heartbeat)
        let pid = try await pool.run(Nap.self, Int(2_500 * heartbeatScale))
        #expect(pid == pool.workerInfo[0].processID)
        #expect(try await pool.run(Spin.self, Int(2_000 * heartbeatScale)) != 0)
        #expect(pool.workerInfo[0].restarts == 0)
        await pool.shutdown()
    }

    /// A driver of the old protocol (version 1) gets a refusal that names both versions.
    @Test func aWorkerRefusesAHelloOfAnotherVersion() async throws {
        let (reply, status): (String, ProcessPoolError.Code) = try await onOwnThread {
            let link = try ChildProcessLauncher(executable: workerExecutable).launch(slot: 0)
            _ = cworkers_set_nonblocking(link.inputDescriptor)
            // Version 1's hello had no heartbeat fields.
            struct OldHello: Encodable { var protocolVersion: UInt16 = 1; var workerID = 0; var jobNames = ["square"]; var maxFrameSize = 1 << 20 }
            let bytes = try Frame(kind: .hello, message: OldHello()).encoded()
            _ = bytes.withUnsafeBytes { write(link.outputDescriptor, $0.baseAddress, $0.count) }
            var decoder = FrameDecoder()
            guard case .frame(let frame) = DescriptorIO.read(link.inputDescriptor, into: &decoder, until: monotonicNanoseconds() + 10_000_000_000),
                  frame.kind == .reject else {
                link.terminate()
                return ("no reject", .workerLost)
            }
            _ = waitForEndOfStream(link.inputDescriptor, seconds: 10)
            return (String(decoding: frame.payload, as: UTF8.self), link.reap())
        }
        #expect(reply.contains("protocol version 1, expected \(WireProtocol.version)"), "\(reply)")
        #expect(status == .workerCrashed(signal: nil, exitCode: 72))
    }

    /// A worker whose driver falls silent while it waits for work gives the driver up (status 77).
    @Test func aWorkerGivesUpASilentDriver() async throws {
        let status: ProcessPoolError.Code = try await onOwnThread {
            let (link, _) = try startedWorker(heartbeat: Heartbeat(interval: .milliseconds(20), lostAfter: .milliseconds(150)))
            // Send nothing, not even heartbeats: the worker must end by itself.
            guard waitForEndOfStream(link.inputDescriptor, seconds: 10) else {
                link.terminate()
                return .workerLost
            }
            return link.reap()
        }
        #expect(status == .workerCrashed(signal: nil, exitCode: 77))
    }
}
