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
            if let words = simpleCommandWords(command), let path = programs.path(words[0]), programs.runsDirectly(path) {
                argv = words
                resolved = path
            }
        } else {
            argv = builder.argv(for: job)
        }
        guard let program = argv.first, !program.isEmpty else { return .failure("job \(job.sequence): nothing to run") }
        guard let path = resolved ?? programs.path(program) else { return .failure("\(program): command not found") }
        guard let ends = outputEnds(preamble: preamble) else { return .failed(lineBuffer ? "pipe" : "cannot create a temporary file", errno) }
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
                    cworkers_spawn_job(paths[0]!, argvPointer, envPointer.baseAddress!, stdin, ends.writeOut?.raw ?? -1, ends.writeErr?.raw ?? -1,
                                       directory == nil ? nil : paths[1], options.niceness, options.openTerminal ? 0 : 1)
                }
            }
        }
        guard pid > 0 else { return .failed(program, -pid) }
        let opened = cworkers_pidfd_open(pid)
        guard let pidfd = OwnedDescriptor(opened) else {
            kill(options.openTerminal ? pid : -pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            return .failed("pidfd_open", -opened)
        }
        // The child has the write ends now; ours close as `ends` goes (they would keep the pipes
        // open after it exits).
        return .success(Spawned(pid: pid, pidfd: pidfd, stdout: ends.readOut, stderr: ends.readErr, remote: nil))
    }

    /// Where a job writes its output and where we read it: memory files, one for both (grouped);
    /// pipes, whose read ends are non-blocking (`--line-buffer`); nothing (`-u`: ours). `preamble`
    /// (`-v`) is written first: into the memory file, whose offset the writer shares, or ours.
    /// `nil` (errno set) when a pipe or file cannot be made.
    struct OutputEnds {
        var writeOut: OwnedDescriptor?
        var writeErr: OwnedDescriptor?
        var readOut: OwnedDescriptor?
        var readErr: OwnedDescriptor?
    }

    func outputEnds(preamble: String?) -> OutputEnds? {
        var ends = OutputEnds()
        switch mode.capture {
        case .pipes:
            guard let outPipe = ownedPipe(), let errPipe = ownedPipe() else { return nil }
            for end in [outPipe.read, errPipe.read] { _ = fcntl(end.raw, F_SETFL, O_NONBLOCK) }
            ends = OutputEnds(writeOut: outPipe.write, writeErr: errPipe.write, readOut: outPipe.read, readErr: errPipe.read)
        case .buffers:
            guard let out = spareBuffers.popLast() ?? bufferFile(), let err = spareBuffers.popLast() ?? bufferFile() else { return nil }
            ends = OutputEnds(writeOut: out, writeErr: err, readOut: out, readErr: err)
        case .inherited:
            break
        }
        if let preamble {
            if ungroup { output.write(preamble) } else if let out = ends.writeOut { writeFully(out.raw, preamble.escapedBytes) }
        }
        return ends
    }

    /// Sends `signal` to a running job: to its process group (all it started), or, under `--tty`,
    /// where jobs share ours, to the job alone; a remote job's through its host's agent.
    func signal(_ job: Running, _ signal: Int32) {
        if let remote = job.remote, let host = job.host {
            hosts[host].link?.send(RemoteFrame(.signal, job: remote.id, fields: [Array(String(signal).utf8)]))
        } else if job.pid > 0 {
            kill(options.openTerminal ? job.pid : -job.pid, signal)
        }
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
