#if canImport(Glibc)
import Glibc
#endif
import WorkersCore

/// How a job's stdout and stderr are taken when it is spawned.
enum OutputCapture: Equatable {
    /// Memory files (or `--tmpdir` files), read when the job ends.
    case buffers
    /// Non-blocking pipes, read by the poll loop as lines come (`--line-buffer`).
    case pipes
    /// Ours: the job writes straight to the run's stdout and stderr (`-u`).
    case inherited
}

/// One of GNU parallel's output modes: how a job's output is captured when it starts, and what
/// becomes of it when it ends (and, under `-k`, when its turn comes: see ``InOrder``).
protocol OutputMode {
    var capture: OutputCapture { get }
    /// A job's output, delivered once: printed, kept in a file or saved. Returns an error that
    /// ends the run, or `nil`. The caller recycles the buffers.
    func deliver(_ finished: Runner.Finished, to output: OutputWriter) -> String?
}

extension Runner {
    /// The output mode `options` asks for, as GNU resolves them: `--results` saves whole outputs
    /// (whatever `--line-buffer` or `-u` say), then `--files`, `-u`, `--line-buffer`, `--group`.
    static func outputMode(_ options: RunOptions, results: ResultsWriter?) -> any OutputMode {
        if let results { return ResultsOutput(writer: results, printsPaths: options.output == .lineBuffered) }
        if options.output == .ungrouped { return UngroupedOutput() }
        if options.outputFiles { return FilesOutput(temporaryDirectory: options.temporaryDirectory) }
        if options.output == .lineBuffered { return LineBufferedOutput() }
        return GroupedOutput()
    }
}

/// `--group`, the default: a job's stdout then its stderr, whole, when it ends.
struct GroupedOutput: OutputMode {
    var capture: OutputCapture { .buffers }

    func deliver(_ finished: Runner.Finished, to output: OutputWriter) -> String? {
        output.print(finished.stdout, finished.stderr, tag: finished.tag)
        return nil
    }
}

/// `--line-buffer`: whole lines as they come (the poll loop relays them). Only a job held back
/// by `-k` has output left to deliver: the lines it wrote before its turn.
struct LineBufferedOutput: OutputMode {
    var capture: OutputCapture { .pipes }

    func deliver(_ finished: Runner.Finished, to output: OutputWriter) -> String? {
        GroupedOutput().deliver(finished, to: output)
    }
}

/// `-u`: the jobs write to the run's stdout and stderr themselves; nothing is left to deliver.
struct UngroupedOutput: OutputMode {
    var capture: OutputCapture { .inherited }

    func deliver(_ finished: Runner.Finished, to output: OutputWriter) -> String? { nil }
}

/// `--files`: a job's stdout stays, in a file of its own whose name is printed; its stderr is
/// printed (GNU's drops it: the README says so).
struct FilesOutput: OutputMode {
    /// `--tmpdir`: where the files go (else `$TMPDIR`, else /tmp).
    let temporaryDirectory: String?
    var capture: OutputCapture { .buffers }

    func deliver(_ finished: Runner.Finished, to output: OutputWriter) -> String? {
        guard let (fd, path) = namedTemporaryFile(in: temporaryDirectory, suffix: ".par"), copyWholeFile(from: finished.stdout, to: fd.raw) else {
            return "--files: cannot write a file for job \(finished.sequence): \(String(cString: strerror(errno)))"
        }
        output.writeLines((path + "\n").escapedBytes[...], to: STDOUT_FILENO, tag: finished.tag)
        output.print(nil, finished.stderr, tag: finished.tag)
        return nil
    }
}

/// `--results NAME`: each job's output saved in one of GNU's layouts (``ResultsWriter``);
/// with `--line-buffer`, as GNU's, where each job's stdout went is printed.
struct ResultsOutput: OutputMode {
    let writer: ResultsWriter
    let printsPaths: Bool
    var capture: OutputCapture { .buffers }

    func deliver(_ finished: Runner.Finished, to output: OutputWriter) -> String? {
        guard let record = finished.record else { return nil }
        if let failure = writer.save(record, stdout: finished.stdout, stderr: finished.stderr) { return "--results: \(failure)" }
        if printsPaths, let path = writer.stdoutPath(sequence: record.sequence, arguments: record.arguments) {
            output.writeLines((path + "\n").escapedBytes[...], to: STDOUT_FILENO, tag: finished.tag)
        }
        return nil
    }
}

/// `-k`: finished jobs wait here until every job before them has been delivered. The order
/// itself (which sequence is next, which were released early) is ``RunScheduler``'s.
struct InOrder {
    private var waiting: [Int: Runner.Finished] = [:]

    /// Holds `finished` until its turn.
    mutating func hold(_ finished: Runner.Finished) { waiting[finished.sequence] = finished }

    /// The held jobs among `sequences` (those whose turn has come), in that order; skipped
    /// jobs are dropped, as they print nothing.
    mutating func take(_ sequences: [Int]) -> [Runner.Finished] {
        sequences.compactMap { waiting.removeValue(forKey: $0) }.filter { !$0.skipped }
    }

    /// Every job still held, in order: at the end of a run whose turns never all came
    /// (a halt, a signal), printed rather than lost.
    mutating func takeAll() -> [Runner.Finished] { take(waiting.keys.sorted()) }
}
