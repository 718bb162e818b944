#if canImport(Glibc)
import Glibc
#endif
import CWorkersShims
import WorkersCore

/// GNU parallel's `{= perl =}` replacement strings, evaluated by one `perl` process for the whole
/// run (see ``PerlHelper`` for what an expression sees). One process keeps an expression's state
/// from job to job, as GNU's single interpreter does (`{= $_ = ++$::G =}` counts), and costs one
/// round trip a value, not a process a job.
///
/// Values are evaluated once per job and input, and remembered: the command, `--tagstring` and
/// `--workdir` of one job see the same value, as in GNU, even when the expression has side effects.
final class PerlEvaluator {
    /// What one evaluation gave.
    struct Value: Equatable {
        /// `$_` after the expression.
        var text: String
        /// `uq()` was called: the value goes into the command unquoted.
        var unquoted: Bool
    }

    /// The expressions' ids, in the order they were compiled.
    private var ids: [String: Int] = [:]
    private let process: pid_t
    /// Closed (nil) first when the evaluator goes: the helper reads its end and exits.
    private var requests: OwnedDescriptor?
    private let answers: OwnedDescriptor
    /// A job's values, by sequence number, input index, expression and input.
    private var cache: [CacheKey: Value] = [:]
    /// Jobs whose expressions called `skip()`.
    private var skipped: Set<Int> = []
    /// Set when the perl process is gone (an expression called `exit`): no more values.
    private var ended = false
    /// The job count for `total_jobs()`, when the runner knows it.
    var totalJobs: Int?
    /// Jobs finished so far, for `$Global::total_completed`.
    var completed = 0
    /// Jobs run at once, for `$Global::max_jobs_running` (`--plus`'s `{0%}`).
    var slots = 1
    /// Whether an expression calls `total_jobs()`: the runner then reads all input first.
    let mentionsTotal: Bool

    /// The value too: `-X` measures lines with stand-in inputs under the same job number.
    private struct CacheKey: Hashable {
        var sequence: Int
        var input: Int
        var code: Int
        var value: String
    }

    /// Starts `perl` and compiles `codes`.
    ///
    /// - Throws: ``RunUsageError`` when perl cannot be found or started, or an expression does not
    ///   compile (GNU's "Cannot use CODE: …").
    init(codes: [String]) throws(RunUsageError) {
        guard let perl = executablePath("perl") else {
            throw RunUsageError("{= … =} replacement strings are Perl: perl must be on PATH", code: .cannotOpen)
        }
        guard let toPerl = ownedPipe(), let fromPerl = ownedPipe() else {
            throw RunUsageError("cannot start perl: \(String(cString: strerror(errno)))", code: .cannotOpen)
        }
        let pid = withEscapedCStrings(["perl", "-e", PerlHelper.script]) { argv in
            perl.withCString { path in cworkers_spawn_worker(path, argv, environ, toPerl.read.raw, fromPerl.write.raw) }
        }
        guard pid > 0 else { throw RunUsageError("cannot start perl: \(String(cString: strerror(-pid)))", code: .cannotOpen) }
        process = pid
        mentionsTotal = codes.contains { $0.contains("total_jobs") }
        requests = toPerl.write
        answers = fromPerl.read
        for code in codes { try compile(code) }
    }

    deinit {
        requests = nil
        waitForExit(process)
    }

    /// Compiles `code` if it is new.
    func compile(_ code: String) throws(RunUsageError) {
        guard ids[code] == nil else { return }
        var frame: [UInt8] = [UInt8(ascii: "D")]
        Self.append(string: code.escapedBytes, to: &frame)
        guard let (flags, message) = roundTrip(frame) else { throw RunUsageError("perl ended while compiling \(code)", code: .cannotOpen) }
        guard flags == 0 else { throw RunUsageError("Cannot use \(code): \(message)", code: .invalidValue) }
        ids[code] = ids.count
    }

    /// The value of `code` for input `index` (from 0) of `job`, `value` being `$_`'s start.
    func value(of code: String, input index: Int, value: String, job: CommandBuilder.Job) -> Value {
        let key = CacheKey(sequence: job.sequence, input: index, code: ids[code] ?? -1, value: value)
        if let known = cache[key] { return known }
        if cache.count > 4096 { cache.removeAll(keepingCapacity: true) }
        let result = evaluate(code, value: value, job: job)
        cache[key] = result
        return result
    }

    /// `--filter`: whether `code` (its replacement strings already filled in) is true. An
    /// expression that dies is false, as an `eval` that fails is in GNU.
    func isTrue(_ code: String) -> Bool {
        guard !ended else { return false }
        var frame: [UInt8] = [UInt8(ascii: "F")]
        Self.append(string: code.escapedBytes, to: &frame)
        guard let (flags, _) = roundTrip(frame) else {
            ended = true
            writeError("the perl process for --filter ended; later filters are false")
            return false
        }
        return flags & 1 != 0
    }

    /// Whether an expression of job `sequence` called `skip()`; forgets it.
    func takeSkip(_ sequence: Int) -> Bool {
        skipped.remove(sequence) != nil
    }

    private func evaluate(_ code: String, value: String, job: CommandBuilder.Job) -> Value {
        guard !ended else { return Value(text: "", unquoted: false) }
        if ids[code] == nil {
            do throws(RunUsageError) { try compile(code) } catch {
                writeError(error.description)
                return Value(text: "", unquoted: false)
            }
        }
        var frame: [UInt8] = [UInt8(ascii: "E")]
        for number in [ids[code]!, job.sequence, job.slot, totalJobs.map { $0 + 1 } ?? 0, completed, slots, job.arguments.count] {
            Self.append(number: number, to: &frame)
        }
        for argument in job.arguments { Self.append(string: argument.escapedBytes, to: &frame) }
        Self.append(string: value.escapedBytes, to: &frame)
        guard let (flags, text) = roundTrip(frame) else {
            ended = true
            writeError("the perl process for {= … =} ended; later values are empty")
            return Value(text: "", unquoted: false)
        }
        if flags & 2 != 0 { skipped.insert(job.sequence) }
        if flags & 4 != 0 {
            writeError("{= \(code) =}: \(String(text.reversed().drop { $0.isWhitespace }.reversed()))")
            return Value(text: "", unquoted: false)
        }
        return Value(text: text, unquoted: flags & 1 != 0)
    }

    private func writeError(_ message: String) {
        writeFully(STDERR_FILENO, "\(programName): \(message)\n".escapedBytes)
    }

    /// Sends `frame` and reads the answer: its flags byte and its string.
    private func roundTrip(_ frame: [UInt8]) -> (UInt8, String)? {
        guard let requests, writeFully(requests.raw, frame), let head = read(exactly: 5) else { return nil }
        let length = head[1...].reduce(0) { $0 << 8 | Int($1) }
        guard let body = read(exactly: length) else { return nil }
        return (head[0], String(escaping: body))
    }

    private func read(exactly count: Int) -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let got = bytes.withUnsafeMutableBytes { buffer in
                readRetryingInterrupts(answers.raw, into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]))
            }
            guard got > 0 else { return nil }
            filled += got
        }
        return bytes
    }

    private static func append(number: Int, to frame: inout [UInt8]) {
        let value = UInt32(truncatingIfNeeded: number)
        frame += [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
    }

    private static func append(string bytes: [UInt8], to frame: inout [UInt8]) {
        append(number: bytes.count, to: &frame)
        frame += bytes
    }
}
