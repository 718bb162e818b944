#if canImport(Glibc)
import Glibc
#endif
import CWorkersShims
import WorkersCore

/// `workers run --semaphore` (GNU's `sem`): at most `-j` commands with the same `--id` run at
/// once, across shells and scripts; the default `-j` is 1, a mutex.
///
/// Each slot is a lock file, `$XDG_RUNTIME_DIR` (or /tmp) `/workers-semaphores-UID/ID/slot-N`,
/// held with `flock` by the command's own process: a slot is free the moment its command ends,
/// even when it is killed, and no state is left to clean up. A command starts in the background
/// (we return at once, 0) holding its slot as fd 3, or with `--fg` in the foreground (we wait
/// and return its status). `--wait` waits until every command of the id has ended. A full
/// semaphore is retried with a back-off from 1 to 100 ms; `--st SECS` gives up after SECS (a
/// negative value: exit 1) or runs anyway (positive, as GNU).
enum SemaphoreMode {
    static func run(_ options: RunOptions, cpus: Int) -> Int32 {
        let directory = Self.directory(id: options.semaphoreID ?? Self.defaultID())
        if let failure = makeDirectories(directory) {
            report("--semaphore: \(failure)")
            return 255
        }
        if options.semaphoreWait { return waitForAll(in: directory) }
        // -q quotes each word, as for jobs.
        let command = options.quoteTemplate ? options.template.map(shellQuote).joined(separator: " ") : options.template.joined(separator: " ")
        guard !command.isEmpty else {
            report("--semaphore needs a command")
            return 255
        }
        let slots = options.jobs.slots(cpus: cpus)
        // The slot is held (its lock with it) until this returns.
        guard let slot = acquire(slots: slots, in: directory, timeout: options.semaphoreTimeout) else { return 1 }
        defer { withExtendedLifetime(slot) {} }
        let shell = Runner.findShell()
        guard let path = executablePath(shell) else {
            report("--semaphore: \(shell): not found")
            return 255
        }
        let argv = [shell, "-c", command]
        // -v: the command first, as GNU's sem prints it (its empty {} leaves a space without -q).
        if options.verbose || options.printCommands {
            let shown = command + (options.quoteTemplate ? "" : " ") + "\n"
            writeFully(options.verbose ? STDOUT_FILENO : STDERR_FILENO, shown.escapedBytes)
        }
        // The command gets our environment as it is, byte for byte.
        if options.semaphoreForeground {
            // In our process group, so Ctrl-C reaches it; our stdin, stdout and stderr.
            let pid = withEscapedCStrings(argv) { argv in cworkers_spawn_job(path, argv, environ, -1, -1, -1, nil, 0, 0) }
            guard pid > 0 else {
                report("--semaphore: \(shell): \(String(cString: strerror(-pid)))")
                return 255
            }
            let (exit, signal) = WaitStatus(raw: waitForExit(pid) ?? 0).exitAndSignal
            return signal != 0 ? 128 + signal : exit
        }
        let pid = withEscapedCStrings(argv) { argv in cworkers_spawn_detached(path, argv, environ, slot.descriptor ?? -1) }
        guard pid > 0 else {
            report("--semaphore: \(shell): \(String(cString: strerror(-pid)))")
            return 255
        }
        return 0
    }

    /// GNU's default id: the controlling terminal's name, else `default`.
    static func defaultID() -> String {
        if let name = ttyname(STDIN_FILENO) { return String(cString: name) }
        return "default"
    }

    /// The slots' directory for `id` (a `/` in it is written `_`).
    static func directory(id: String) -> String {
        let base = environmentValue("XDG_RUNTIME_DIR").flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        let name = String(id.map { $0 == "/" ? "_" : $0 })
        return "\(base)/workers-semaphores-\(getuid())/\(name.isEmpty ? "default" : name)"
    }

    /// How a wait for a slot ended, when the command is to run.
    enum Acquired {
        /// A free slot, locked while its descriptor is open.
        case slot(OwnedDescriptor)
        /// A positive `--semaphore-timeout` ran out: the command runs anyway, holding no slot (GNU's).
        case timedOut

        /// The slot's descriptor, for the detached command to inherit (and hold the lock with).
        var descriptor: Int32? {
            if case .slot(let file) = self { return file.raw }
            return nil
        }
    }

    /// A free slot; `nil` when a negative `timeout` ran out and we give up (GNU's).
    static func acquire(slots: Int, in directory: String, timeout: Double?) -> Acquired? {
        let start = monotonicSeconds()
        var pause: UInt32 = 1_000
        while true {
            for slot in 0..<max(1, slots) {
                guard let file = OwnedDescriptor(open("\(directory)/slot-\(slot)", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)) else {
                    report("--semaphore: cannot open \(directory)/slot-\(slot): \(String(cString: strerror(errno)))")
                    return nil
                }
                if flock(file.raw, LOCK_EX | LOCK_NB) == 0 { return .slot(file) }
            }
            if let timeout, timeout != 0, monotonicSeconds() - start >= abs(timeout) {
                return timeout > 0 ? .timedOut : nil
            }
            usleep(pause)
            pause = min(pause * 2, 100_000)
        }
    }

    /// `--wait`: takes every slot of the id in turn (blocking), so it returns once all the
    /// commands that held one have ended.
    static func waitForAll(in directory: String) -> Int32 {
        guard let entries = opendir(directory) else { return 0 }
        var names: [String] = []
        while let entry = readdir(entries) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name.hasPrefix("slot-") { names.append(name) }
        }
        closedir(entries)
        for name in names {
            guard let file = OwnedDescriptor(open("\(directory)/\(name)", O_RDWR | O_CLOEXEC)) else { continue }
            _ = retryingInterrupts { flock(file.raw, LOCK_EX) }
        }
        return 0
    }

    private static func report(_ message: String) {
        writeStandardError("\(programName): \(message)\n")
    }
}
