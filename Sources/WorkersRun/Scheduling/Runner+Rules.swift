#if canImport(Glibc)
import Glibc
#endif

// The runner's pure pieces: GNU's halt rules and exit statuses, the progress bar, the joblog
// readers, the shell choice. Each is tested on its own.
extension Runner {
    /// `--bar`: `[#########.....] 60% 6/10 jobs · 1 failed · 0:04 left`, from the rate so far.
    static func bar(done: Int, total: Int?, failed: Int, elapsed: Double, width: Int) -> String {
        let failures = failed > 0 ? " · \(failed) failed" : ""
        guard let total, total > 0 else { return "\(programName): \(done) done\(failures)" }
        let fraction = min(1, Double(done) / Double(total))
        let filled = Int((fraction * Double(width)).rounded(.down))
        let left = done > 0 ? elapsed / Double(done) * Double(total - done) : 0
        let eta = done > 0 && done < total ? cFormat(" · %d:%02d left", Int32(Int(left) / 60), Int32(Int(left) % 60)) : ""
        return "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] "
            + "\(Int((fraction * 100).rounded(.down)))% \(done)/\(total) jobs\(failures)\(eta)"
    }

    /// GNU's `should_we_halt`: whether the run stops after this job and, if so, its exit status.
    ///
    /// What is counted: failures (when this job failed), successes (when it succeeded), or every
    /// finished job. `N%` is N % of all the jobs (`total`; the input is read first to count it),
    /// or of those finished so far when the total is unknown (`--pipe`). The status: 0 for
    /// `success`; for `fail` and `done`, the job's own status (signal + 128) when the threshold is
    /// one job, else the failures counted (at most 101), or as a percentage of the total.
    static func haltStatus(_ halt: RunOptions.Halt, failed: Int, succeeded: Int, total: Int?, failedNow: Bool, exit: Int32, signal: Int32) -> Int32? {
        let done = failed + succeeded
        let count: Int
        switch halt.why {
        case .fail: guard failedNow else { return nil }; count = failed
        case .success: guard !failedNow else { return nil }; count = succeeded
        case .done: count = done
        }
        let needed: Double
        switch halt.threshold {
        case .count(let n): needed = Double(n)
        case .percent(let p):
            guard let total else {
                guard done >= 3, Double(count) * 100 >= p * Double(done) else { return nil }
                return halt.why == .success ? 0 : finalStatus(halt, failed: failed, total: done)
            }
            needed = Double(total) * p / 100
        }
        guard Double(count) >= needed else { return nil }
        if halt.why == .success { return 0 }
        if needed == 1 { return exit != 0 ? exit : signal != 0 ? 128 + signal : 0 }
        return finalStatus(halt, failed: failed, total: total ?? done)
    }

    /// The exit status when the run ends: the failures (at most 101), or, under `--halt …=N%`,
    /// the failures as a percentage (rounded up) of `total` — GNU's `halt`.
    static func finalStatus(_ halt: RunOptions.Halt?, failed: Int, total: Int) -> Int32 {
        if let halt, case .percent = halt.threshold {
            return Int32((Double(failed) * 100 / Double(max(1, total))).rounded(.up))
        }
        return Int32(min(failed, 101))
    }


    /// GNU's choice: `$PARALLEL_SHELL`, else the shell that started us, else `$SHELL`, else /bin/sh.
    static func findShell() -> String {
        if let shell = environmentValue("PARALLEL_SHELL"), !shell.isEmpty { return shell }
        let shells: Set<String> = ["sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "busybox"]
        if let parent = symbolicLinkTarget("/proc/\(getppid())/exe"),
           let name = parent.split(separator: "/").last, shells.contains(String(name)) {
            return parent
        }
        if let shell = environmentValue("SHELL"), !shell.isEmpty, access(shell, X_OK) == 0 { return shell }
        return "/bin/sh"
    }

    /// `--retry-failed`: the jobs whose last joblog row failed, in sequence order, with their
    /// commands (GNU writes a command's newlines as NUL; they are turned back).
    static func failedCommands(in path: String) -> [(sequence: Int, command: String)] {
        guard let text = readTextFile(path) else { return [] }
        var last: [Int: (ok: Bool, command: String)] = [:]
        // The header's Seq is not a number; a joblog GNU found empty has none.
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: "\t", maxSplits: 8, omittingEmptySubsequences: false)
            guard fields.count == 9, let sequence = Int(fields[0]) else { continue }
            let ok = trimmed(fields[6], of: [" "]) == "0" && trimmed(fields[7], of: [" "]) == "0"
            last[sequence] = (ok, String(fields[8]).replacingNUL(with: "\n"))
        }
        return last.filter { !$0.value.ok }.sorted { $0.key < $1.key }.map { (sequence: $0.key, command: $0.value.command) }
    }

    /// Sequence numbers a joblog records: all of them (`--resume`), or the ones that succeeded
    /// (`--resume-failed`).
    static func finishedSequences(in path: String, failedToo: Bool) -> Set<Int> {
        guard let text = readTextFile(path) else { return [] }
        var done = Set<Int>()
        // The header's Seq is not a number; a joblog GNU found empty has none.
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
            guard fields.count >= 8, let sequence = Int(fields[0]) else { continue }
            let ok = trimmed(fields[6], of: [" "]) == "0" && trimmed(fields[7], of: [" "]) == "0"
            if failedToo || ok { done.insert(sequence) }
        }
        return done
    }
}
