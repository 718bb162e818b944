#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import WorkersRun

/// GNU parallel's scheduling rules, driven with made-up times: no process, no file, no waiting.
@Suite struct RunSchedulerTests {
    typealias Rules = RunScheduler.Rules

    @Test func slotsAreTheLowestFreeAndNoMoreThanJ() {
        var scheduler = RunScheduler(rules: Rules(slots: 2))
        #expect(scheduler.mayStart(now: 0, running: 0) == .now(slot: 1))
        scheduler.started(sequence: 1, slot: 1, attempt: 1, now: 0)
        #expect(scheduler.mayStart(now: 0, running: 1) == .now(slot: 2))
        scheduler.started(sequence: 2, slot: 2, attempt: 1, now: 0)
        #expect(scheduler.mayStart(now: 0, running: 2) == .no)
        // Slot 1 frees: the next job gets {%} = 1 again, as GNU's.
        _ = scheduler.ended(sequence: 1, slot: 1, attempt: 1, exit: 0, signal: 0, runtime: 1, total: nil)
        #expect(scheduler.mayStart(now: 1, running: 1) == .now(slot: 1))
        scheduler.limitSlots(to: 1)
        #expect(scheduler.mayStart(now: 1, running: 1) == .no)
    }

    @Test func delaySpacesTheStarts() {
        var scheduler = RunScheduler(rules: Rules(slots: 4, delay: 0.5))
        scheduler.started(sequence: 1, slot: 1, attempt: 1, now: 10)
        #expect(scheduler.mayStart(now: 10.2, running: 1) == .at(10.5))
        #expect(scheduler.nextWake(now: 10.2, running: 1, wantsStart: true) == 10.5)
        #expect(scheduler.nextWake(now: 10.2, running: 1, wantsStart: false) == nil)
        #expect(scheduler.mayStart(now: 10.5, running: 1) == .now(slot: 2))
    }

    @Test func aFailingJobRunsAgainUntilItsAttemptsAreUsed() {
        var scheduler = RunScheduler(rules: Rules(slots: 1, attempts: 3))
        for attempt in 1...2 {
            scheduler.started(sequence: 1, slot: 1, attempt: attempt, now: 0)
            #expect(scheduler.ended(sequence: 1, slot: 1, attempt: attempt, exit: 1, signal: 0, runtime: 0, total: nil).retry)
        }
        scheduler.started(sequence: 1, slot: 1, attempt: 3, now: 0)
        let last = scheduler.ended(sequence: 1, slot: 1, attempt: 3, exit: 1, signal: 0, runtime: 0, total: nil)
        #expect(!last.retry && last.failed)
        // Retries are not new jobs: one started, one failed, GNU's status 1.
        #expect(scheduler.started == 1 && scheduler.failed == 1 && scheduler.exitStatus() == 1)
    }

    @Test func haltNowOnTheFirstFailureStopsWithItsStatus() {
        let halt = RunOptions.Halt(when: .now, why: .fail, threshold: .count(1))
        var scheduler = RunScheduler(rules: Rules(slots: 2, halt: halt))
        scheduler.started(sequence: 1, slot: 1, attempt: 1, now: 0)
        scheduler.started(sequence: 2, slot: 2, attempt: 1, now: 0)
        let ending = scheduler.ended(sequence: 1, slot: 1, attempt: 1, exit: 7, signal: 0, runtime: 0, total: 4)
        #expect(ending.halts == .now)
        #expect(scheduler.stopping && scheduler.mayStart(now: 0, running: 1) == .no)
        // The other job gets the terminate sequence: TERM now, TERM at 200 ms, …, KILL.
        #expect(scheduler.terminateAll(now: 1) == [.init(sequence: 2, signal: SIGTERM)])
        #expect(scheduler.advance(now: 1.1) == [])
        #expect(scheduler.advance(now: 1.21) == [.init(sequence: 2, signal: SIGTERM)])
        #expect(scheduler.advance(now: 1.30) == [])
        #expect(scheduler.advance(now: 1.32) == [.init(sequence: 2, signal: SIGTERM)])
        #expect(scheduler.advance(now: 1.38) == [.init(sequence: 2, signal: SIGKILL)])
        #expect(scheduler.advance(now: 1.41) == [.init(sequence: 2, signal: SIGKILL)])  // the last step repeats
        _ = scheduler.ended(sequence: 2, slot: 2, attempt: 1, exit: 0, signal: SIGKILL, runtime: 1.4, total: 4)
        #expect(scheduler.exitStatus() == 7)
    }

    @Test func haltSoonOnSuccessesLetsRunningJobsFinish() {
        let halt = RunOptions.Halt(when: .soon, why: .success, threshold: .count(2))
        var scheduler = RunScheduler(rules: Rules(slots: 3, halt: halt))
        for sequence in 1...3 { scheduler.started(sequence: sequence, slot: sequence, attempt: 1, now: 0) }
        #expect(scheduler.ended(sequence: 1, slot: 1, attempt: 1, exit: 0, signal: 0, runtime: 1, total: nil).halts == nil)
        #expect(scheduler.ended(sequence: 2, slot: 2, attempt: 1, exit: 0, signal: 0, runtime: 1, total: nil).halts == .soon)
        #expect(scheduler.advance(now: 5) == [])  // nobody is killed
        _ = scheduler.ended(sequence: 3, slot: 3, attempt: 1, exit: 1, signal: 0, runtime: 2, total: nil)
        #expect(scheduler.exitStatus() == 0)
    }

    @Test func timeoutInSecondsKillsAndCountsAsAFailure() {
        var scheduler = RunScheduler(rules: Rules(slots: 1, timeout: .seconds(2)))
        scheduler.started(sequence: 1, slot: 1, attempt: 1, now: 10)
        #expect(scheduler.nextWake(now: 10, running: 1, wantsStart: false) == 12)
        #expect(scheduler.advance(now: 11.9) == [])
        #expect(scheduler.advance(now: 12) == [.init(sequence: 1, signal: SIGTERM, timedOut: true)])
        let ending = scheduler.ended(sequence: 1, slot: 1, attempt: 1, exit: 0, signal: SIGTERM, runtime: 2, total: nil)
        #expect(ending.failed && ending.timedOut)
    }

    @Test func timeoutAsAPercentOfTheMedianStartsAfterThreeSuccesses() {
        var scheduler = RunScheduler(rules: Rules(slots: 1, timeout: .percentOfMedian(200)))
        for (sequence, runtime) in [(1, 1.0), (2, 3.0), (3, 2.0)] {
            scheduler.started(sequence: sequence, slot: 1, attempt: 1, now: 0)
            #expect(scheduler.nextWake(now: 0, running: 1, wantsStart: false) == nil)  // no deadline yet
            _ = scheduler.ended(sequence: sequence, slot: 1, attempt: 1, exit: 0, signal: 0, runtime: runtime, total: nil)
        }
        // The median is 2 s: 200 % of it is 4 s.
        scheduler.started(sequence: 4, slot: 1, attempt: 1, now: 100)
        #expect(scheduler.nextWake(now: 100, running: 1, wantsStart: false) == 104)
    }

    @Test func keepOrderReleasesOutputsInInputOrder() {
        var scheduler = RunScheduler(rules: Rules(slots: 3, keepOrder: true))
        #expect(scheduler.release(2) == [])
        #expect(scheduler.release(3) == [])
        #expect(scheduler.release(1) == [1, 2, 3])
        #expect(scheduler.nextToPrint == 4)
        #expect(scheduler.release(5) == [])
        #expect(scheduler.release(4) == [4, 5])
        var unordered = RunScheduler(rules: Rules(slots: 3))
        #expect(unordered.release(2) == [2])
    }

    @Test func sigtermStopsEverythingAndSighupOnlyTheStarts() {
        var hungUp = RunScheduler(rules: Rules(slots: 2))
        hungUp.started(sequence: 1, slot: 1, attempt: 1, now: 0)
        #expect(hungUp.received(signal: SIGHUP, now: 1) == [])
        #expect(hungUp.stopping && hungUp.mayStart(now: 1, running: 1) == .no)
        _ = hungUp.ended(sequence: 1, slot: 1, attempt: 1, exit: 0, signal: 0, runtime: 1, total: nil)
        #expect(hungUp.exitStatus() == 0)

        var terminated = RunScheduler(rules: Rules(slots: 2))
        terminated.started(sequence: 1, slot: 1, attempt: 1, now: 0)
        #expect(terminated.received(signal: SIGTERM, now: 1) == [.init(sequence: 1, signal: SIGTERM)])
        #expect(terminated.received(signal: SIGINT, now: 1) == [])  // only the first counts
        // A failing job is not retried while the run stops.
        var retrying = RunScheduler(rules: Rules(slots: 1, attempts: 5))
        retrying.started(sequence: 1, slot: 1, attempt: 1, now: 0)
        _ = retrying.received(signal: SIGTERM, now: 0)
        #expect(!retrying.ended(sequence: 1, slot: 1, attempt: 1, exit: 0, signal: SIGTERM, runtime: 0, total: nil).retry)
        #expect(retrying.exitStatus() == 128 + SIGTERM)
    }

    @Test func anErrorStopsTheRunWithStatus255() {
        var scheduler = RunScheduler(rules: Rules(slots: 1))
        scheduler.stopWithError()
        #expect(scheduler.stopping && scheduler.exitStatus() == 255)
        #expect(scheduler.mayStart(now: 0, running: 0) == .no)
    }
}
