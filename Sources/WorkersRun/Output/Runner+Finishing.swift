#if canImport(Glibc)
import Glibc
#endif
import CWorkersShims
import DequeModule
import WorkersCore

/// A job that ended: retried, logged, counted and its output printed (grouped, `-k`, `--lb`,
/// `--files`, `--results`); the run's conclusion.
extension Runner {
    /// `--retries {…}`: this job's attempts, from its inputs (0 is no limit, as for the option);
    /// `nil` without a template.
    func attempts(of job: Running) -> Int? {
        guard let template = options.retriesTemplate else { return nil }
        let text = builder.substitute(template, job: CommandBuilder.Job(arguments: job.job.arguments, sequence: job.job.sequence, slot: job.slot)) { $0 }
        guard let count = Int(trimmed(text, of: [" "])), count >= 0 else { return 1 }
        return count == 0 ? Int(Int32.max) : count
    }

    /// A job ended: retry it, or log it, count it, print (or save, or hold) its output, and
    /// decide whether `--halt` stops the run.
    func finish(_ job: Running, exit: Int32, signal: Int32) {
        let runtime = monotonicSeconds() - job.startMonotonic
        if let directory = job.removeDirectory { removeTree(directory) }
        if let host = job.host { hosts[host].running -= 1 }
        // A job that `--halt now` killed is not named as one that counts towards it (GNU's).
        let killedByHalt = scheduler.halting?.when == .now
        let ending = scheduler.ended(sequence: job.job.sequence, slot: job.slot, attempt: job.job.attempt, exit: exit, signal: signal,
                                     runtime: runtime, total: state.total, attempts: attempts(of: job))
        let failed = ending.failed, timedOut = ending.timedOut
        if ending.retry {
            // Only the last attempt's output is printed.
            if !lineBuffer {
                recycle(job.stdout)
                recycle(job.stderr)
            }
            recycle(job.heldOut)
            recycle(job.heldErr)
            var again = job.job
            again.attempt += 1
            if let host = job.host, !again.failedHosts.contains(host) { again.failedHosts.append(host) }
            state.retries.append(again)
            return
        }
        if let path = job.job.catPath { unlink(path) }
        builder.perl?.completed += 1
        rereadJobsFile()
        rereadLoginFiles()
        if let joblog {
            // Receive: the bytes of stdout, as GNU counts them (not known under -u).
            let received = lineBuffer ? job.relayedOut : job.stdout.map { max(0, Int(lseek($0.raw, 0, SEEK_END))) } ?? 0
            joblog.write(sequence: job.job.hostSequence ?? job.job.sequence, host: job.host.map { hosts[$0].login.login } ?? ":", start: job.startEpoch, runtime: runtime, sent: job.sent, received: received,
                         exit: timedOut ? -1 : exit, signal: timedOut ? 15 : signal, command: job.command)
        }
        if failed, state.failures.count < 10 { state.failures.append((job.job.sequence, exit, signal, job.command)) }
        if options.json {
            output.writeError(JobEvent(arguments: job.job.arguments, command: job.command, exit: exit, runtime: runtime,
                                       sequence: job.job.sequence, signal: signal, slot: job.slot, timedOut: timedOut).line)
        }
        // --line-buffer has printed the job's lines, but for those -k held back.
        var finished = Finished(sequence: job.job.sequence, tag: job.tag,
                                stdout: lineBuffer ? job.heldOut : job.stdout, stderr: lineBuffer ? job.heldErr : job.stderr)
        if results != nil {
            finished.record = ResultsWriter.Record(
                sequence: job.job.sequence, arguments: job.job.arguments, command: job.command, startEpoch: job.startEpoch,
                runtime: runtime, sent: job.sent, exit: timedOut ? -1 : exit, signal: timedOut ? 15 : signal)
        }
        if options.keepOrder {
            state.inOrder.hold(finished)
            flushInOrder(releasing: finished.sequence)
        } else {
            deliver(finished)
        }
        let done = scheduler.succeeded + scheduler.failed
        if options.bar {
            output.progress(Self.bar(done: done, total: state.total.map { $0 - skip.count }, failed: scheduler.failed,
                                     elapsed: monotonicSeconds() - state.runStart, width: 30))
        } else if options.progress {
            output.progress("\(programName): \(done) done, \(scheduler.failed) failed, \(state.running.count) running")
        }
        // Under --halt, GNU names each job that counts towards it.
        if let halt = options.halt, !killedByHalt {
            switch halt.why {
            case .fail where failed: output.writeError("\(programName): This job failed:\n\(job.command)\n")
            case .success where !failed: output.writeError("\(programName): This job succeeded:\n\(job.command)\n")
            case .done: output.writeError("\(programName): This job finished:\n\(job.command)\n")
            default: break
            }
        }
        // --halt …=N% counts N % of every job, as GNU (which reads all input first for it too).
        switch ending.halts {
        case .now: perform(scheduler.terminateAll(now: monotonicSeconds()))
        case .soon where !state.running.isEmpty:
            output.writeError("\(programName): Starting no more jobs. Waiting for \(state.running.count) jobs to finish.\n")
        default: break
        }
    }

    /// Hands a finished job's output to the output mode (printed, kept in a file or saved).
    func deliver(_ finished: Finished) {
        if !state.discardsOutput, let failure = mode.deliver(finished, to: output) { stopWithError(failure) }
        recycle(finished.stdout)
        recycle(finished.stderr)
    }

    /// An error that ends the run as GNU's do: no new jobs, running ones finish, status 255.
    func stopWithError(_ message: String) {
        output.writeError("\(programName): \(message)\n")
        scheduler.stopWithError()
    }

    /// `-k`: `sequence` is done; delivers every finished job whose turn has come, in order.
    func flushInOrder(releasing sequence: Int) {
        for finished in state.inOrder.take(scheduler.release(sequence)) { deliver(finished) }
        // --line-buffer -k: the job now first in order prints what it held, then goes live.
        if lineBuffer, let index = state.running.firstIndex(where: { $0.job.sequence == scheduler.nextToPrint }), state.running[index].heldOut != nil {
            output.print(state.running[index].heldOut, state.running[index].heldErr, tag: state.running[index].tag)
            recycle(state.running[index].heldOut)
            recycle(state.running[index].heldErr)
            state.running[index].heldOut = nil
            state.running[index].heldErr = nil
        }
    }

    /// The last output, the exit status and the failure summary.
    func conclude() -> Summary {
        // Anything still waiting (a turn that never came) is printed rather than lost.
        for finished in state.inOrder.takeAll() { deliver(finished) }
        closeHosts()
        if options.bar || options.progress { output.endProgress() }
        let summary = Summary(started: scheduler.started, succeeded: scheduler.succeeded, failed: scheduler.failed,
                              exitStatus: scheduler.exitStatus(), stdoutClosed: scheduler.caughtSignal == SIGPIPE, failures: state.failures)
        // The summary is for a person at a terminal: scripts and test suites compare stderr with
        // GNU's, which has none.
        if summary.failed > 0, !options.dryRun, output.errorIsTerminal {
            var text = "\(programName): \(summary.failed) of \(summary.started) job\(summary.started == 1 ? "" : "s") failed\n"
            for failure in summary.failures {
                let how = failure.signal != 0 ? "signal \(failure.signal)" : "exit \(failure.exit)"
                text += "  #\(failure.sequence) (\(how)): \(failure.command)\n"
            }
            if summary.failed > summary.failures.count { text += "  … and \(summary.failed - summary.failures.count) more\n" }
            output.writeError(text)
        }
        return summary
    }
}
