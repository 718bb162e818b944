#if canImport(Glibc)
import Glibc
#endif
import CWorkersShims
import DequeModule
import WorkersCore

/// Spawning a job: its shell or program, its output buffers or pipes, its process group.
extension Runner {
    /// A started job's process and descriptors.
    struct Spawned {
        var pid: pid_t
        var pidfd: OwnedDescriptor?
        /// Where its output is read: as ``Running/stdout`` and ``Running/stderr``.
        var stdout: OwnedDescriptor?
        var stderr: OwnedDescriptor?
        /// A remote job's host, id and output sinks.
        var remote: RemoteHandle?
    }

    enum SpawnResult {
        case success(Spawned)
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
        // Each descriptor made here closes by itself on every way out, the child's ends included
        // (it has its own copies once spawned).
        var argv: [String]
        var resolved: String?
        if let shell, let prelude = parallelEnvironment {
            // $PARALLEL_ENV comes first, in the same shell (its functions and aliases are for it).
            argv = [shell, "-c", prelude + "\n" + command]
        } else if let shell {
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
        // The child's stdout and stderr, and (--line-buffer) the ends we read.
        var out: OwnedDescriptor?
        var err: OwnedDescriptor?
        var readEnds: (OwnedDescriptor, OwnedDescriptor)?
        switch mode.capture {
        case .pipes:
            guard let outPipe = ownedPipe() else { return .failed("pipe", errno) }
            guard let errPipe = ownedPipe() else { return .failed("pipe", errno) }
            for end in [outPipe.read, errPipe.read] { _ = fcntl(end.raw, F_SETFL, O_NONBLOCK) }
            out = outPipe.write
            err = errPipe.write
            readEnds = (outPipe.read, errPipe.read)
        case .buffers:
            out = spareBuffers.popLast() ?? bufferFile()
            err = spareBuffers.popLast() ?? bufferFile()
            guard out != nil, err != nil else { return .failed("cannot create a temporary file", errno) }
        case .inherited:
            break
        }
        if let preamble {
            // The child's stdout shares this file's offset: its output lands after the line.
            if ungroup { output.write(preamble) } else if let out { writeFully(out.raw, preamble.escapedBytes) }
        }
        let sequence = strdup("PARALLEL_SEQ=\(job.sequence)")
        let slot = strdup("PARALLEL_JOBSLOT=\(job.slot)")
        defer { free(sequence); free(slot) }
        let workingDirectory = directory.map { directory in "PWD=\(directory)".withEscapedCString { strdup($0) } }
        defer { free(workingDirectory ?? nil) }
        let env = environment + [sequence, slot] + (directory != nil ? [oldWorkingDirectory, workingDirectory ?? nil] : []) + [nil]
        // The program's path and the directory are bytes too (an input can name them).
        let pid = withEscapedCStrings(argv) { argvPointer in
            withEscapedCStrings([path] + (directory.map { [$0] } ?? [])) { paths in
                env.withUnsafeBufferPointer { envPointer in
                    cworkers_spawn_job(paths[0]!, argvPointer, envPointer.baseAddress!, stdin, out?.raw ?? -1, err?.raw ?? -1,
                                       directory == nil ? nil : paths[1], options.niceness, options.openTerminal ? 0 : 1)
                }
            }
        }
        if let (outRead, errRead) = readEnds {
            // The child has the write ends now; ours would keep the pipes open after it exits.
            out = outRead
            err = errRead
        }
        guard pid > 0 else { return .failed(program, -pid) }
        let opened = cworkers_pidfd_open(pid)
        guard let pidfd = OwnedDescriptor(opened) else {
            signal(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            return .failed("pidfd_open", -opened)
        }
        return .success(Spawned(pid: pid, pidfd: pidfd, stdout: out, stderr: err, remote: nil))
    }

    /// Sends `signal` to a job: to its process group (all it started), or, under `--tty`, where
    /// jobs share ours, to the job alone.
    func signal(_ pid: pid_t, _ signal: Int32) {
        kill(options.openTerminal ? pid : -pid, signal)
    }

    /// Sends `signal` to a running job: its local process group, or through its host's agent to
    /// the remote one.
    func signal(_ job: Running, _ signal: Int32) {
        if let remote = job.remote {
            hosts[remote.host].link?.send(RemoteFrame(.signal, job: remote.id, fields: [Array(String(signal).utf8)]))
        } else if job.pid > 0 {
            self.signal(job.pid, signal)
        }
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
        let file = OwnedDescriptor(open(path, O_RDONLY | O_CLOEXEC))
        let count = file.map { file in head.withUnsafeMutableBytes { read(file.raw, $0.baseAddress, 4) } } ?? -1
        // Unreadable (execute-only): let the exec decide, as before.
        let direct = count < 0 || head.starts(with: [0x7F, 0x45, 0x4C, 0x46]) || head.starts(with: [0x23, 0x21])
        directPrograms[path] = direct
        return direct
    }

    /// Empties a job's output buffer and keeps it for the next job (two fewer files to create and
    /// close per job), or closes it when enough are kept.
    func recycle(_ buffer: OwnedDescriptor?) {
        guard let buffer, spareBuffers.count < 16 else { return }  // not kept: it closes
        // Most jobs leave a buffer empty (stderr, often stdout): one lseek then, no truncation.
        let empty = lseek(buffer.raw, 0, SEEK_END) == 0
        if empty || (ftruncate(buffer.raw, 0) == 0 && lseek(buffer.raw, 0, SEEK_SET) == 0) { spareBuffers.append(buffer) }
    }

    /// Where a job's output or `--pipe` block waits: a memory file (memfd), or with `--tmpdir` an
    /// unlinked file there (for outputs too large for memory).
    func bufferFile() -> OwnedDescriptor? {
        let fd = options.temporaryDirectory.map { cworkers_anonymous_file($0) } ?? cworkers_memory_file("workers-run")
        if fd < 0 { errno = -fd }
        return OwnedDescriptor(fd)
    }
}

/// A new file `parXXXXX<suffix>` (five random letters, as GNU's names have) in `--tmpdir`
/// (`temporaryDirectory`), else `$TMPDIR`, else /tmp, made with O_EXCL so it is never someone else's.
func namedTemporaryFile(in temporaryDirectory: String?, suffix: String) -> (fd: OwnedDescriptor, path: String)? {
    let directory = temporaryDirectory ?? environmentValue("TMPDIR").flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
    let letters = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    for _ in 0..<100 {
        let name = String((0..<5).map { _ in letters.randomElement()! })
        let path = "\(directory)/par\(name)\(suffix)"
        if let fd = OwnedDescriptor(openFile(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)) { return (fd, path) }
        guard errno == EEXIST else { return nil }
    }
    return nil
}
