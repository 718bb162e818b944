#if canImport(Glibc)
import Glibc
#endif
import CWorkersShims
import WorkersCore

/// `workers run --agent`: what `workers run -S` starts on each host, once, over one ssh (or
/// `srun`) connection. It reads ``RemoteFrame``s on stdin, runs each job in a process group of
/// its own, streams its output back, returns its `--return` files and reports its exit.
///
/// When the link ends (the driver died, the connection was cut, ssh was killed) or the agent is
/// sent SIGTERM, SIGINT or SIGHUP, it ends every job's process group — TERM, then KILL after
/// half a second — and exits: no job outlives the run that started it.
final class RemoteAgent {
    struct Job {
        var id: UInt64
        var pid: pid_t
        var pidfd: OwnedDescriptor
        var stdout: OwnedDescriptor?
        var stderr: OwnedDescriptor?
        var directory: String
        var start: RemoteStart
    }

    private let input: Int32
    private let output: Int32
    private var decoder = RemoteFrameDecoder()
    private var jobs: [Job] = []
    private let home: String
    /// The agent's environment, the base of every job's: C strings made once (a Slurm step's
    /// hundred variables, copied for every job, were a tenth of a job's cost), and their names.
    private let environment: [UnsafeMutablePointer<CChar>?]
    private let environmentNames: [Substring]
    private let environmentNameSet: Set<Substring>
    private let devNull: OwnedDescriptor?
    private var signals: (read: OwnedDescriptor, write: OwnedDescriptor)?
    private var greeted = false
    private var programs = ProgramLookup()
    private var outgoing: [UInt8] = []
    /// Until the hello says otherwise: a driver silent for a minute is gone.
    private var watch = LinkWatch(lostAfter: 60, now: monotonicSeconds())

    /// A newline after every frame (and the mark): for `srun`, whose slurmstepd passes a task's
    /// output on only at newlines.
    private let terminator: UInt8?

    init(input: Int32 = STDIN_FILENO, output: Int32 = STDOUT_FILENO, newlines: Bool = false) {
        self.input = input
        self.output = output
        terminator = newlines ? 10 : nil
        home = environmentValue("HOME").flatMap { $0.isEmpty ? nil : $0 } ?? "/"
        var entries: [String] = []
        var pointer = environ
        while let entry = pointer.pointee {
            entries.append(escapedString(cString: entry))
            pointer += 1
        }
        // The login shell exec'd us with SHLVL lowered to 0. A job's bash at level 1 that sees
        // SSH_CLIENT takes itself for the ssh session's shell and reads ~/.bashrc (80 ms a job
        // here, with pyenv's set-up in it); one level up, it is a plain `bash -c`, as locally.
        let level = entries.first { $0.hasPrefix("SHLVL=") }.flatMap { Int($0.dropFirst(6)) } ?? 0
        let base = entries.filter { !$0.hasPrefix("SHLVL=") && !$0.hasPrefix("PWD=") } + ["SHLVL=\(max(level, 1))"]
        environment = base.map { $0.withEscapedCString { strdup($0) } }
        environmentNames = base.map { $0.prefix { $0 != "=" } }
        environmentNameSet = Set(environmentNames)
        devNull = OwnedDescriptor(open("/dev/null", O_RDONLY | O_CLOEXEC))
    }

    deinit { for entry in environment { free(entry) } }

    /// Serves until the driver says goodbye or goes away; returns the exit status.
    func serve() -> Int32 {
        cworkers_ignore_sigpipe()
        // slurmstepd starts tasks with SIGCHLD ignored: children would then be reaped by the
        // kernel, and waitpid could never report a job's status.
        signal(SIGCHLD, SIG_DFL)
        // `srun -u`, or a login that forces a terminal (RequestTTY in ssh_config), makes the link a pseudo-terminal:
        // raw mode makes it carry bytes as they are (no CR added, no ^C read), and our own
        // messages must not go into it.
        for fd in Set([input, output]) where isatty(fd) == 1 {
            var modes = termios()
            if tcgetattr(fd, &modes) == 0 {
                cfmakeraw(&modes)
                _ = tcsetattr(fd, TCSANOW, &modes)
            }
            if isatty(STDERR_FILENO) == 1, let devNull { dup2(devNull.raw, STDERR_FILENO) }
        }
        // What the login printed before us (a shell's greeting, a warning) ends at the mark.
        writeFully(output, RemoteFrame.agentMark + (terminator.map { [$0] } ?? []))
        send(RemoteFrame(.ready, fields: [Array(String(RemoteFrame.version).utf8), Array(String(cpuCount).utf8), Array(hostName.utf8)]))
        flush()
        if let pipe = ownedPipe() {
            _ = fcntl(pipe.write.raw, F_SETFL, O_NONBLOCK)
            _ = cworkers_signals_to_pipe(pipe.write.raw)
            signals = pipe
        }
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            var descriptors = [pollfd(fd: input, events: Int16(POLLIN), revents: 0), pollfd(fd: signals?.read.raw ?? -1, events: Int16(POLLIN), revents: 0)]
            for job in jobs {
                descriptors.append(pollfd(fd: job.pidfd.raw, events: Int16(POLLIN), revents: 0))
                descriptors.append(pollfd(fd: job.stdout?.raw ?? -1, events: Int16(POLLIN), revents: 0))
                descriptors.append(pollfd(fd: job.stderr?.raw ?? -1, events: Int16(POLLIN), revents: 0))
            }
            flush()
            let wait = max(0, watch.nextWake - monotonicSeconds())
            let ready = poll(&descriptors, nfds_t(descriptors.count), Int32((wait * 1000).rounded(.up)))
            if ready < 0 {
                if errno == EINTR { continue }
                return endAll(status: 1)
            }
            let now = monotonicSeconds()
            // A cut link (no end seen, nothing heard): the jobs end rather than run on unseen.
            if watch.isLost(at: now) { return endAll(status: 1) }
            if greeted, watch.heartbeatDue(at: now) { send(RemoteFrame(.heartbeat)) }
            if descriptors[1].revents != 0 { return endAll(status: 0) }
            let count = jobs.count
            // Output first, then exits (an exit's last output is read before it is reported).
            for index in 0..<count {
                if descriptors[2 + 3 * index + 1].revents != 0 { pump(&jobs[index], stdout: true) }
                if descriptors[2 + 3 * index + 2].revents != 0 { pump(&jobs[index], stdout: false) }
            }
            let exited = (0..<count).filter { descriptors[2 + 3 * $0].revents != 0 }.map { jobs[$0].id }
            for id in exited {
                guard let index = jobs.firstIndex(where: { $0.id == id }) else { continue }
                var status: Int32 = 0
                guard waitpid(jobs[index].pid, &status, WNOHANG) == jobs[index].pid else { continue }
                end(jobs.remove(at: index), status: status)
            }
            if descriptors[0].revents != 0 {
                let read = chunk.withUnsafeMutableBytes { readRetryingInterrupts(input, into: $0) }
                // The link ended or broke: nobody is left to report to.
                guard read > 0 else { return endAll(status: read == 0 ? 0 : 1) }
                watch.heard(at: monotonicSeconds())
                decoder.feed(chunk[0..<read])
                do {
                    while let frame = try decoder.next() {
                        if let status = handle(frame) { return status }
                    }
                } catch {
                    writeStandardError("\(programName) --agent: protocol error: \(error.description)\n")
                    return endAll(status: 2)
                }
            }
        }
    }


    /// Carries out one frame from the driver; a status when the agent is to exit.
    private func handle(_ frame: RemoteFrame) -> Int32? {
        switch frame.kind {
        case .hello:
            guard frame.number(0) == RemoteFrame.version else {
                writeStandardError("\(programName) --agent: protocol version \(frame.text(0)), this agent speaks \(RemoteFrame.version)\n")
                return endAll(status: 2)
            }
            greeted = true
            if let milliseconds = frame.number(1), milliseconds > 0 { watch.lostAfter = Double(milliseconds) / 1000 }
        case .start:
            guard greeted else { return endAll(status: 2) }
            do {
                start(frame.job, try RemoteStart(frame))
            } catch {
                writeStandardError("\(programName) --agent: protocol error: \(error.description)\n")
                return endAll(status: 2)
            }
        case .heartbeat:
            break
        case .signal:
            if let job = jobs.first(where: { $0.id == frame.job }), let signal = frame.number(0) { kill(-job.pid, Int32(signal)) }
        case .put:
            if let file = try? RemoteFile(frame, at: 0), let failure = file.write(in: home) {
                writeStandardError("\(programName) --agent: \(failure)\n")
            }
        case .goodbye:
            for path in frame.fields.map({ String(escaping: $0) }) { removeTree(resolve(path, in: home)) }
            return endAll(status: 0)
        case .ready, .stdout, .stderr, .returned, .exited:
            writeStandardError("\(programName) --agent: protocol error: a \(frame.kind) frame from the driver\n")
            return endAll(status: 2)
        }
        return nil
    }

    private func start(_ id: UInt64, _ request: RemoteStart) {
        let directory = request.directory.isEmpty ? home : resolve(request.directory, in: home)
        if directory != home, let failure = makeDirectories(directory) {
            return refuse(id, "\(programName): Error: Cannot change into non-executable dir \(directory): \(failure)")
        }
        for file in request.files {
            if let failure = file.write(in: directory) { return refuse(id, "\(programName): \(failure)") }
        }
        guard let outPipe = ownedPipe(), let errPipe = ownedPipe() else { return refuse(id, "pipe: \(String(cString: strerror(errno)))") }
        for end in [outPipe.read, errPipe.read] { _ = fcntl(end.raw, F_SETFL, O_NONBLOCK) }
        let shell = programs.path(request.shell) ?? "/bin/sh"
        var argv = [shell, "-c", request.command]
        var program = shell
        if let first = request.words.first, let path = programs.path(first), programs.runsDirectly(path) {
            argv = request.words
            program = path
        }
        // The job's variables replace the agent's of the same name.
        let added = (request.environment + ["PWD=\(directory)"]).map { $0.withEscapedCString { strdup($0) } }
        defer { for entry in added { free(entry) } }
        let addedNames = Set(request.environment.map { $0.prefix { $0 != "=" } })
        var envp = addedNames.isDisjoint(with: environmentNameSet)
            ? environment : zip(environment, environmentNames).filter { !addedNames.contains($0.1) }.map(\.0)
        envp += added
        envp.append(nil)
        let pid = withEscapedCStrings(argv) { argv in
            envp.withUnsafeBufferPointer { envp in
                withEscapedCStrings([program, directory]) { paths in
                    cworkers_spawn_job(paths[0]!, argv, envp.baseAddress!, devNull?.raw ?? -1, outPipe.write.raw, errPipe.write.raw, paths[1], 0, 1)
                }
            }
        }
        guard pid > 0 else { return refuse(id, "\(shell): \(String(cString: strerror(-pid)))") }
        guard let pidfd = OwnedDescriptor(cworkers_pidfd_open(pid)) else {
            kill(pid, SIGKILL)
            _ = waitForExit(pid)
            return refuse(id, "pidfd_open: \(String(cString: strerror(errno)))")
        }
        jobs.append(Job(id: id, pid: pid, pidfd: pidfd, stdout: outPipe.read, stderr: errPipe.read, directory: directory, start: request))
    }

    /// A job that could not start: its reason on its stderr, and exit 255.
    private func refuse(_ id: UInt64, _ message: String) {
        send(RemoteFrame(.stderr, job: id, fields: [(message + "\n").escapedBytes]))
        send(RemoteFrame(.exited, job: id, fields: [Array(String(255 << 8).utf8), message.escapedBytes]))
    }

    /// Sends what a job's stdout or stderr has; at its end, closes it.
    private func pump(_ job: inout Job, stdout: Bool, final: Bool = false) {
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while let fd = stdout ? job.stdout?.raw : job.stderr?.raw {
            let count = chunk.withUnsafeMutableBytes { readRetryingInterrupts(fd, into: $0) }
            if count > 0 {
                send(RemoteFrame(stdout ? .stdout : .stderr, job: job.id, fields: [Array(chunk[0..<count])]))
                if outgoing.count >= 1 << 20 { flush() }
                if !final { return }
                continue
            }
            if count < 0, errno == EAGAIN, !final { return }
            if stdout { job.stdout = nil } else { job.stderr = nil }
        }
    }

    /// A job exited: the rest of its output, its `--return` files, its clean-up, its status.
    private func end(_ ended: Job, status: Int32) {
        var job = ended
        pump(&job, stdout: true, final: true)
        pump(&job, stdout: false, final: true)
        for path in job.start.returns {
            if let file = RemoteFile(reading: path, from: job.directory) {
                send(RemoteFrame(.returned, job: job.id, fields: file.fields))
            } else {
                send(RemoteFrame(.stderr, job: job.id, fields: ["\(programName): --return: cannot read \(resolve(path, in: job.directory)): \(String(cString: strerror(errno)))\n".escapedBytes]))
            }
        }
        if job.start.cleanup {
            for path in job.start.files.map(\.path) + job.start.returns { removeTree(resolve(path, in: job.directory)) }
        }
        if job.start.removeDirectory { removeTree(job.directory) }
        send(RemoteFrame(.exited, job: job.id, fields: [Array(String(status).utf8)]))
    }

    /// Ends every job (TERM to its group; KILL to what is left after half a second) and returns `status`.
    private func endAll(status: Int32) -> Int32 {
        flush()
        for job in jobs { kill(-job.pid, SIGTERM) }
        let deadline = monotonicNanoseconds() + 500_000_000
        while !jobs.isEmpty, monotonicNanoseconds() < deadline {
            var descriptors = jobs.map { pollfd(fd: $0.pidfd.raw, events: Int16(POLLIN), revents: 0) }
            _ = poll(&descriptors, nfds_t(descriptors.count), 50)
            jobs.removeAll { job in
                var status: Int32 = 0
                return waitpid(job.pid, &status, WNOHANG) == job.pid
            }
        }
        for job in jobs {
            kill(-job.pid, SIGKILL)
            _ = waitForExit(job.pid)
        }
        jobs = []
        return status
    }

    /// Queues `frame`; what one turn of the loop queued goes in one write (``flush()``), so two
    /// jobs that end together cost the link one message.
    private func send(_ frame: RemoteFrame) {
        frame.encode(into: &outgoing)
        if let terminator { outgoing.append(terminator) }
    }

    private func flush() {
        guard !outgoing.isEmpty else { return }
        // A driver that is gone is found by the next read of stdin.
        writeFully(output, outgoing)
        outgoing.removeAll(keepingCapacity: outgoing.capacity <= 1 << 20)
        watch.sent(at: monotonicSeconds())
    }
}

