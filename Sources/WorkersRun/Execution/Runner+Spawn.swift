#if canImport(Glibc)
import Glibc
#endif
import CWorkersShims
import DequeModule
import WorkersCore

/// Spawning a job: its shell or program, its output buffers or pipes, its process group.
extension Runner {
    enum SpawnResult {
        case success((pid_t, Int32, Int32, Int32))
        case failure(String)
        /// The process is out of file descriptors: the job waits for one to be freed.
        case outOfDescriptors(String)

        static func failed(_ what: String, _ code: Int32) -> SpawnResult {
            let message = "\(what): \(String(cString: strerror(code)))"
            return code == EMFILE || code == ENFILE ? .outOfDescriptors(message) : .failure(message)
        }
    }

    /// Starts one job: the shell (or the program itself, for plain words), its output to memory
    /// files (grouped), pipes (`--line-buffer`) or ours (`-u`); `preamble` (`-v`) is written to
    /// its stdout buffer first, `directory` (`--workdir`) is where it runs.
    func spawn(_ job: CommandBuilder.Job, command: String, stdin: Int32, directory: String?, preamble: String?) -> SpawnResult {
        var argv: [String]
        var resolved: String?
        if let shell {
            argv = [shell, "-c", command]
            // A command of plain words runs as the shell would run it, without the shell: the
            // same program, the same arguments, a fork and an exec fewer.
            if let words = simpleCommandWords(command), let path = programPath(words[0]), execsDirectly(path) {
                argv = words
                resolved = path
            }
        } else {
            argv = builder.argv(for: job)
        }
        guard let program = argv.first, !program.isEmpty else { return .failure("job \(job.sequence): nothing to run") }
        guard let path = resolved ?? programPath(program) else { return .failure("\(program): command not found") }
        var out: Int32 = -1
        var err: Int32 = -1
        var parentEnds: [Int32] = []
        if lineBuffer {
            var outPipe: [Int32] = [-1, -1]
            var errPipe: [Int32] = [-1, -1]
            guard cworkers_pipe_cloexec(&outPipe) == 0 else { return .failed("pipe", errno) }
            guard cworkers_pipe_cloexec(&errPipe) == 0 else {
                let code = errno
                close(outPipe[0]); close(outPipe[1])
                return .failed("pipe", code)
            }
            for fd in [outPipe[0], errPipe[0]] { _ = fcntl(fd, F_SETFL, O_NONBLOCK) }
            out = outPipe[1]
            err = errPipe[1]
            parentEnds = [outPipe[0], errPipe[0]]
        } else if !ungroup {
            out = spareBuffers.popLast() ?? bufferFile()
            err = spareBuffers.popLast() ?? bufferFile()
            guard out >= 0, err >= 0 else {
                let code = errno
                if out >= 0 { close(out) }
                if err >= 0 { close(err) }
                return .failed("cannot create a temporary file", code)
            }
        }
        if let preamble {
            // The child's stdout shares this file's offset: its output lands after the line.
            if ungroup { output.write(preamble) } else if out >= 0 { writeFully(out, preamble.escapedBytes) }
        }
        let sequence = strdup("PARALLEL_SEQ=\(job.sequence)")
        let slot = strdup("PARALLEL_JOBSLOT=\(job.slot)")
        defer { free(sequence); free(slot) }
        let env = environment + [sequence, slot, nil]
        // The program's path and the directory are bytes too (an input can name them).
        let pid = withEscapedCStrings(argv) { argvPointer in
            withEscapedCStrings([path] + (directory.map { [$0] } ?? [])) { paths in
                env.withUnsafeBufferPointer { envPointer in
                    cworkers_spawn_job(paths[0]!, argvPointer, envPointer.baseAddress!, stdin, out, err,
                                       directory == nil ? nil : paths[1], options.niceness, options.openTerminal ? 0 : 1)
                }
            }
        }
        if !parentEnds.isEmpty {
            // The child has the write ends now; ours would keep the pipes open after it exits.
            close(out)
            close(err)
            out = parentEnds[0]
            err = parentEnds[1]
        }
        guard pid > 0 else {
            if out >= 0 { close(out); close(err) }
            return .failed(program, -pid)
        }
        let pidfd = cworkers_pidfd_open(pid)
        guard pidfd >= 0 else {
            signal(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            if out >= 0 { close(out); close(err) }
            return .failed("pidfd_open", -pidfd)
        }
        return .success((pid, pidfd, out, err))
    }

    /// Sends `signal` to a job: to its process group (all it started), or, under `--tty`, where
    /// jobs share ours, to the job alone.
    func signal(_ pid: pid_t, _ signal: Int32) {
        kill(options.openTerminal ? pid : -pid, signal)
    }

    /// `program`'s path on PATH, remembered as a shell's hash table does (a PATH search is a
    /// system call per directory: a fifth of our time per job before). Misses are not remembered,
    /// so a program that appears during the run is found.
    func programPath(_ program: String) -> String? {
        if let path = programPaths[program] { return path }
        guard let path = executablePath(program) else { return nil }
        if !program.contains("/") { programPaths[program] = path }
        return path
    }

    /// Whether the kernel runs `path` itself (an ELF binary or a `#!` script), remembered per
    /// path. A shell runs any other executable file as a shell script, so the exec fast path
    /// leaves those to the shell.
    func execsDirectly(_ path: String) -> Bool {
        if let known = directPrograms[path] { return known }
        var head = [UInt8](repeating: 0, count: 4)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        let count = fd >= 0 ? head.withUnsafeMutableBytes { read(fd, $0.baseAddress, 4) } : -1
        if fd >= 0 { close(fd) }
        // Unreadable (execute-only): let the exec decide, as before.
        let direct = count < 0 || head.starts(with: [0x7F, 0x45, 0x4C, 0x46]) || head.starts(with: [0x23, 0x21])
        directPrograms[path] = direct
        return direct
    }

    /// Empties a job's output buffer and keeps it for the next job (two fewer files to create and
    /// close per job), or closes it when enough are kept.
    func recycle(_ fd: Int32) {
        guard fd >= 0 else { return }
        // Most jobs leave a buffer empty (stderr, often stdout): one lseek then, no truncation.
        let empty = lseek(fd, 0, SEEK_END) == 0
        if spareBuffers.count < 16, empty || (ftruncate(fd, 0) == 0 && lseek(fd, 0, SEEK_SET) == 0) {
            spareBuffers.append(fd)
        } else {
            close(fd)
        }
    }

    /// Where a job's output or `--pipe` block waits: a memory file (memfd), or with `--tmpdir` an
    /// unlinked file there (for outputs too large for memory).
    func bufferFile() -> Int32 {
        if let directory = options.temporaryDirectory { return cworkers_anonymous_file(directory) }
        return cworkers_memory_file("workers-run")
    }

    func write(_ fd: Int32, _ text: String) {
        writeFully(fd, text.escapedBytes)
    }
    /// A new file `parXXXXXX<suffix>` in `--tmpdir`, else `$TMPDIR`, else /tmp (GNU's names).
    func namedTemporaryFile(suffix: String) -> (fd: Int32, path: String)? {
        let directory = options.temporaryDirectory ?? environmentValue("TMPDIR").flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array("\(directory)/parXXXXXX\(suffix)".utf8CString)
        let fd = cworkers_named_temp_file(&template, Int32(suffix.utf8.count))
        guard fd >= 0 else { errno = -fd; return nil }
        return (fd, String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }
}
