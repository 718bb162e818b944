#if canImport(Glibc)
import Glibc
#endif
import CWorkersShims
import DequeModule
import WorkersCore

/// A host the run may place jobs on: this machine (`:`) or one reached by a ``RemoteLink``.
struct RunHost {
    var login: SSHLogin
    /// `nil` for this machine.
    var link: RemoteLink?
    /// Jobs at once: its `N/`, else `-j` of its CPUs.
    var capacity = 0
    var running = 0
    /// Up and taking jobs; a host whose link broke, or that left the `--slf` file, takes none.
    var usable = true
    var local: Bool { link == nil }
}

/// Remote hosts (`-S`, `--slf`, `--slurm`): one agent a host, started once; jobs, signals,
/// output, `--transferfile`/`--return` files and exits are frames on its link, read in the run's
/// one poll loop.
extension Runner {
    /// Connects to every host (at once; `--sshdelay` apart), waits until each agent is ready or
    /// its link failed, and sets the run's slots to what the usable hosts take. A host that
    /// cannot be reached is named once, on stderr, and left out.
    func connectHosts() {
        var logins: [SSHLogin] = []
        do {
            for text in options.sshLogins {
                if text == ".." || text == "-" {
                    logins += try loginsFromFile(text == ".." ? ".." : "-")
                } else {
                    logins += try SSHLogin.parseList(text)
                }
            }
            for name in options.sshLoginFiles { logins += try loginsFromFile(name) }
            if options.slurm { logins += try slurmNodes() }
        } catch {
            stopWithError(error.description)
            return
        }
        addHosts(logins)
        if hosts.isEmpty || !hosts.contains(where: \.usable) {
            stopWithError("Error: no host to run jobs on")
        }
    }

    /// The sshlogins of an `--slf` file (`-`: standard input), its change time remembered.
    func loginsFromFile(_ name: String) throws(RunUsageError) -> [SSHLogin] {
        if name == "-" { return try SSHLogin.parseFile(String(escaping: readWholeFile("/dev/stdin") ?? [])) }
        let path = SSHLogin.filePath(name, home: environmentValue("HOME") ?? "/")
        guard let text = readTextFile(path) else {
            throw RunUsageError("cannot open the sshloginfile \(path): \(String(cString: strerror(errno)))", code: .cannotOpen)
        }
        loginFileTimes[path] = Self.modified(path)
        return try SSHLogin.parseFile(text)
    }

    /// `--slurm`: the allocation's nodes (`scontrol show hostnames`), `SLURM_CPUS_ON_NODE` jobs
    /// each unless `-j` says otherwise, an agent on each by one `srun` step.
    func slurmNodes() throws(RunUsageError) -> [SSHLogin] {
        guard let list = environmentValue("SLURM_JOB_NODELIST"), !list.isEmpty, environmentValue("SLURM_JOB_ID") != nil else {
            throw RunUsageError("option --slurm runs inside a Slurm allocation (salloc, sbatch): SLURM_JOB_ID and SLURM_JOB_NODELIST are not set", code: .conflictingOptions)
        }
        guard let names = commandOutput(["scontrol", "show", "hostnames", list]) else {
            throw RunUsageError("option --slurm: scontrol show hostnames \(list) failed", code: .invalidValue)
        }
        let nodes = names.split(separator: "\n").map(String.init)
        // Each node's CPUs in the allocation: SLURM_JOB_CPUS_PER_NODE (`4(x2),2`, in node
        // order), else SLURM_CPUS_ON_NODE (the same on every node).
        let perNode = Self.slurmCPUs(environmentValue("SLURM_JOB_CPUS_PER_NODE") ?? "", nodes: nodes.count)
        let onNode = environmentValue("SLURM_CPUS_ON_NODE").flatMap { Int($0) }
        return nodes.enumerated().map { index, node in
            SSHLogin(login: node, slots: nil, command: ["srun"], destination: node, port: nil, slurm: true, cpus: perNode?[index] ?? onNode)
        }
    }

    /// `SLURM_JOB_CPUS_PER_NODE` (`4(x2),2`) as one count a node, or `nil` when it does not
    /// describe `nodes` nodes.
    static func slurmCPUs(_ text: String, nodes: Int) -> [Int]? {
        var counts: [Int] = []
        for part in text.split(separator: ",") {
            let pieces = part.split(separator: "(")
            guard let count = Int(pieces[0]) else { return nil }
            var times = 1
            if pieces.count == 2 {
                guard pieces[1].hasPrefix("x"), pieces[1].hasSuffix(")"), let repeated = Int(pieces[1].dropFirst().dropLast()) else { return nil }
                times = repeated
            }
            counts += Array(repeating: count, count: times)
        }
        return counts.count == nodes ? counts : nil
    }

    /// Starts the links of `logins` (those not already hosts), waits for their agents, and adds
    /// them as hosts.
    func addHosts(_ logins: [SSHLogin]) {
        var pending: [(index: Int, link: RemoteLink)] = []
        for (number, login) in logins.enumerated() where !hosts.contains(where: { $0.login.login == login.login && $0.usable }) {
            if login.isLocal {
                hosts.append(RunHost(login: login, link: nil, capacity: login.slots ?? options.jobs.slots(cpus: cpus)))
                continue
            }
            if number > 0, options.sshDelay > 0 { sleepThread(nanoseconds: UInt64(options.sshDelay * 1e9)) }
            switch RemoteLink.start(login: login, argv: transport(for: login)) {
            case .success(let link):
                hosts.append(RunHost(login: login, link: link, capacity: 0, usable: false))
                pending.append((hosts.count - 1, link))
            case .failure(let failure):
                unreachable(login, failure.reason)
            }
        }
        // Each agent says it is ready, or its link ends (ssh could not connect, or no agent).
        var waiting = pending
        while !waiting.isEmpty {
            var descriptors = waiting.map { pollfd(fd: $0.link.socket.raw, events: Int16(POLLIN), revents: 0) }
            let ready = poll(&descriptors, nfds_t(descriptors.count), 1000)
            if ready < 0, errno != EINTR { break }
            var left: [(index: Int, link: RemoteLink)] = []
            for (entry, descriptor) in zip(waiting, descriptors) {
                guard descriptor.revents != 0 else { left.append(entry); continue }
                let (frames, ended) = entry.link.receive()
                if let frame = frames.first, frame.kind == .ready {
                    guard frame.number(0) == RemoteFrame.version else {
                        entry.link.close(grace: 0)
                        unreachable(entry.link.login, "its workers speaks protocol \(frame.text(0)), this one \(RemoteFrame.version)")
                        continue
                    }
                    let remoteCPUs = max(1, frame.number(1) ?? 1)
                    entry.link.cpus = remoteCPUs
                    entry.link.remoteName = frame.text(2)
                    hosts[entry.index].capacity = entry.link.login.slots ?? options.jobs.slots(cpus: entry.link.login.cpus ?? remoteCPUs)
                    hosts[entry.index].usable = true
                    entry.link.watch = LinkWatch(lostAfter: options.lostAfter, now: monotonicSeconds())
                    entry.link.send(RemoteFrame(.hello, fields: [Array(String(RemoteFrame.version).utf8), Array(String(Int(options.lostAfter * 1000)).utf8)]))
                    for name in options.baseFiles {
                        if let file = localFile(name, for: entry.link.login) { entry.link.send(RemoteFrame(.put, fields: file.fields)) }
                    }
                    _ = entry.link.flush()
                } else if ended != nil || !frames.isEmpty {
                    // A moment for a transport that closed its output to exit, so that its
                    // status can say what happened when it printed nothing.
                    entry.link.close(grace: ended != nil ? 0.5 : 0)
                    let reason = entry.link.lastError
                    let silent = (ended ?? "no agent answered") + (entry.link.transportEnd.map { " (\($0))" } ?? "")
                    unreachable(entry.link.login, reason.isEmpty ? silent : reason)
                } else {
                    left.append(entry)
                }
            }
            waiting = left
        }
        updateSlots()
    }

    /// The argv that starts `login`'s agent.
    func transport(for login: SSHLogin) -> [String] {
        if login.slurm {
            // One step per node, kept when a node fails (--no-kill), sharing the allocation's
            // CPUs (--overlap). slurmstepd passes a task's output on at newlines: the agent ends
            // each frame with one (srun -u would give it a terminal instead: as fast here, but
            // bytes through a line discipline rather than a pipe).
            return ["srun", "--no-kill", "--overlap", "--quiet", "--nodes=1", "--ntasks=1", "--nodelist=\(login.destination)",
                    "--kill-on-bad-exit=0", "/bin/sh", "-c", agentCommand(newlines: true)]
        }
        let ssh = (try? RunOptions.shellWords(options.sshCommand ?? environmentValue("PARALLEL_SSH") ?? "ssh")) ?? ["ssh"]
        // The far side's login shell runs this line: ours is one sh script, quoted once.
        return login.transport(ssh: ssh.isEmpty ? ["ssh"] : ssh, remote: "exec /bin/sh -c " + singleQuoted(agentCommand()))
    }

    /// The shell command that starts the agent on a host: `$WORKERS_REMOTE_COMMAND`, else this
    /// very binary where the host has it at the same path (a shared file system, or a copy),
    /// else `workers` on the host's PATH.
    func agentCommand(newlines: Bool = false) -> String {
        let flag = newlines ? "--agent newlines" : "--agent"
        if let command = environmentValue("WORKERS_REMOTE_COMMAND"), !command.isEmpty { return command + (newlines ? " newlines" : "") }
        guard let path = symbolicLinkTarget("/proc/self/exe") else { return "exec workers run \(flag)" }
        let own = (path.split(separator: "/").last ?? "").hasPrefix("workers-run") ? singleQuoted(path) + " " + flag : singleQuoted(path) + " run " + flag
        return "if [ -x \(singleQuoted(path)) ]; then exec \(own); else exec workers run \(flag); fi"
    }

    /// A host that cannot be reached: named once (unless `--filter-hosts`), and left out.
    func unreachable(_ login: SSHLogin, _ reason: String) {
        if !options.filterHosts {
            output.writeError("\(programName): Warning: Cannot reach \(login.login): \(reason). Its jobs run on the other hosts.\n")
        }
    }

    /// The run's slots are what the usable hosts take.
    func updateSlots() { scheduler.setSlots(hostCapacity) }

    /// Jobs at once on the usable hosts.
    var hostCapacity: Int {
        hosts.reduce(0) { total, host in host.usable ? (total.addingReportingOverflow(host.capacity).overflow ? Int.max : total + host.capacity) : total }
    }

    /// The host for `job`: a usable one with room, preferring those it has not failed on (GNU's
    /// `--retries` rule), then the least loaded; its own host for `--onall`/`--nonall`.
    func chooseHost(for job: Pending) -> Int? {
        if let pinned = job.pinnedHost {
            return hosts[pinned].usable && hosts[pinned].running < hosts[pinned].capacity ? pinned : nil
        }
        let open = hosts.indices.filter { hosts[$0].usable && hosts[$0].running < hosts[$0].capacity }
        let fresh = open.filter { !job.failedHosts.contains($0) }
        return (fresh.isEmpty ? open : fresh).min { hosts[$0].running * hosts[$1].capacity < hosts[$1].running * hosts[$0].capacity }
    }

    /// `name` (a local file, relative to here) as it goes to `login`'s host: a base file, or a
    /// job's `--transferfile`; `nil`, said once on stderr, when it cannot be read.
    func localFile(_ name: String, for login: SSHLogin) -> RemoteFile? {
        guard let file = RemoteFile(reading: name, from: startDirectory) else {
            output.writeError("\(programName): Warning: cannot send \(name) to \(login.login): \(String(cString: strerror(errno)))\n")
            return nil
        }
        return file
    }

    /// Starts `job` on remote host `host`: its command, directory, environment and files go in
    /// one frame; its output comes back into the same buffers (or pipes) a local job's would.
    func spawnRemote(_ job: CommandBuilder.Job, pending: Pending, host: Int, command: String, preamble: String?) -> SpawnResult {
        guard let link = hosts[host].link else { return .failure("no link") }
        var directory = ""
        var removeDirectory = false
        if options.uniqueWorkingDirectory {
            directory = ".parallel/tmp/\(hostName)-\(getpid())-\(job.sequence)"
            removeDirectory = true
        } else if let template = options.workingDirectory {
            directory = builder.substitute(template, job: job) { $0 }
            if directory == "." {
                // GNU: where we are, relative to the home directory when beneath it.
                let home = environmentValue("HOME") ?? ""
                if !home.isEmpty, startDirectory == home { directory = "" }
                else if !home.isEmpty, startDirectory.hasPrefix(home + "/") { directory = String(startDirectory.dropFirst(home.count + 1)) }
                else { directory = startDirectory }
            }
        }
        var files: [RemoteFile] = []
        for template in options.transferFiles {
            let name = builder.substitute(template, job: job) { $0 }
            if let file = localFile(name, for: link.login) { files.append(file) }
        }
        let returns = options.returnFiles.map { builder.substitute($0, job: job) { $0 } }
        let environment = remoteEnvironment + ["PARALLEL_SEQ=\(job.sequence)", "PARALLEL_JOBSLOT=\(job.slot)", "PARALLEL_PID=\(getpid())",
                                               "PARALLEL_SSHLOGIN=\(hosts[host].login.login)", "PARALLEL_SSHHOST=\(hosts[host].login.host)"]
        let request = RemoteStart(shell: shell ?? "/bin/sh", command: (parallelEnvironment.map { $0 + "\n" } ?? "") + command, directory: directory,
                                  removeDirectory: removeDirectory, environment: environment, files: files, returns: returns, cleanup: options.cleanup,
                                  words: parallelEnvironment == nil ? simpleCommandWords(command) ?? [] : [])
        // Its output goes where a local job's would; we write what its frames bring to the ends
        // a local job would write to (--line-buffer: pipes we relay from, big enough that a
        // frame's 64 KiB never waits on them).
        guard let ends = outputEnds(preamble: preamble) else { return .failed(lineBuffer ? "pipe" : "cannot create a temporary file", errno) }
        if lineBuffer { for end in [ends.writeOut, ends.writeErr] { _ = fcntl(end?.raw ?? -1, linuxSetPipeSize, Int32(1 << 20)) } }
        let id = nextRemoteID
        nextRemoteID += 1
        link.send(RemoteFrame(.start, job: id, fields: request.fields))
        return .success(Spawned(pid: 0, pidfd: nil, stdout: ends.readOut, stderr: ends.readErr, remote: RemoteHandle(id: id, sinkOut: ends.writeOut, sinkErr: ends.writeErr)))
    }

    /// The descriptors the poll loop watches for the links: one a usable host, POLLOUT too while
    /// frames wait (what was queued since the last turn is sent first).
    func linkDescriptors() -> [pollfd] {
        // (A broken link is not lost here, amid the loop's descriptors: poll reports it.)
        for host in hosts where host.link?.closed == false && host.link?.wantsWrite == true { _ = host.link?.flush() }
        return hosts.map { host in
            guard let link = host.link, host.usable || host.running > 0 else { return pollfd(fd: -1, events: 0, revents: 0) }
            return pollfd(fd: link.socket.raw, events: Int16(POLLIN) | (link.wantsWrite ? Int16(POLLOUT) : 0), revents: 0)
        }
    }

    /// When the links next need the loop: a heartbeat due, or a silence becoming a loss.
    func linksWake() -> Double? {
        hosts.compactMap { host in
            guard let link = host.link, !link.closed else { return nil }
            // A host let go: at once, to say goodbye.
            return host.usable || host.running > 0 ? link.watch.nextWake : 0
        }.min()
    }

    /// Heartbeats to the links that are due one; a link silent past `--lost-after` is lost; a
    /// host that left the `--slf` file is let go once its last job ends.
    func tendLinks() {
        let now = monotonicSeconds()
        for host in hosts.indices {
            guard let link = hosts[host].link, !link.closed else { continue }
            guard hosts[host].usable || hosts[host].running > 0 else {
                link.send(RemoteFrame(.goodbye))
                _ = link.flush()
                link.close(grace: 0)
                continue
            }
            if link.watch.isLost(at: now) {
                lose(host, "nothing heard for \(cFormat("%g", options.lostAfter)) s (the link is cut, or the host is down)")
            } else if link.watch.heartbeatDue(at: now) {
                link.send(RemoteFrame(.heartbeat))
            }
        }
    }

    /// Handles what the poll loop saw on the links.
    func handleLinks(_ descriptors: ArraySlice<pollfd>) {
        for (host, descriptor) in zip(hosts.indices, descriptors) where descriptor.revents != 0 {
            guard let link = hosts[host].link else { continue }
            if descriptor.revents & Int16(POLLOUT) != 0, !link.flush() {
                lose(host, "the connection broke")
                continue
            }
            guard descriptor.revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 else { continue }
            let (frames, ended) = link.receive()
            for frame in frames { handle(frame, from: host) }
            if let ended { lose(host, ended) }
        }
    }

    /// One frame from host `host`'s agent.
    func handle(_ frame: RemoteFrame, from host: Int) {
        guard let index = state.running.firstIndex(where: { $0.host == host && $0.remote?.id == frame.job }) else { return }
        switch frame.kind {
        case .stdout, .stderr:
            let bytes = frame.fields.first ?? []
            let isOut = frame.kind == .stdout
            if ungroup {
                writeFully(isOut ? STDOUT_FILENO : STDERR_FILENO, bytes)
            } else if let sink = isOut ? state.running[index].remote?.sinkOut : state.running[index].remote?.sinkErr {
                writeFully(sink.raw, bytes)
                if lineBuffer { relay(&state.running[index], stdout: isOut) }
            }
        case .returned:
            guard let file = try? RemoteFile(frame, at: 0) else { return }
            if let failure = file.write(in: startDirectory) { output.writeError("\(programName): --return: \(failure)\n") }
        case .exited:
            let status = Int32(frame.number(0) ?? (255 << 8))
            remoteEnded(index, status: status)
        default:
            break
        }
    }

    /// A remote job ended with wait status `status`: it finishes as a local job does (which
    /// gives its host room again, and remembers the host if it is to be retried).
    func remoteEnded(_ index: Int, status: Int32) {
        if state.running[index].remote != nil {
            state.running[index].remote?.sinkOut = nil
            state.running[index].remote?.sinkErr = nil
        }
        if lineBuffer {
            relay(&state.running[index], stdout: true, final: true)
            relay(&state.running[index], stdout: false, final: true)
        }
        let job = state.running.remove(at: index)
        let (exit, signal) = WaitStatus(raw: status).exitAndSignal
        finish(job, exit: exit, signal: signal)
    }

    /// Host `host`'s link ended: named once, it takes no more jobs, and its running jobs fail
    /// with ssh's 255 (and run again elsewhere when `--retries` allows).
    func lose(_ host: Int, _ reason: String) {
        guard let link = hosts[host].link else { return }
        let detail = reason.hasPrefix("nothing heard") ? "" : link.lastError
        link.close(grace: 0)
        let wasUsable = hosts[host].usable
        hosts[host].usable = false
        updateSlots()
        if wasUsable || hosts[host].running > 0 {
            output.writeError("\(programName): Warning: Lost \(hosts[host].login.login): \(detail.isEmpty ? reason : detail). "
                + "\(hosts[host].running) running job\(hosts[host].running == 1 ? "" : "s") there failed.\n")
        }
        while let index = state.running.firstIndex(where: { $0.host == host && $0.remote != nil }) {
            if let sink = state.running[index].remote?.sinkErr, !ungroup {
                writeFully(sink.raw, "\(programName): \(hosts[host].login.login): the connection to the host was lost\n".escapedBytes)
            }
            remoteEnded(index, status: 255 << 8)
        }
        if hostCapacity == 0, state.inputLeft, !scheduler.stopping {
            stopWithError("Error: no host left to run jobs on")
        }
    }

    /// `--slf`: at most once a second, when a job ends, the files are read again if they
    /// changed: new hosts join, hosts no longer listed take no new jobs (GNU's rule).
    func rereadLoginFiles() {
        guard !options.sshLoginFiles.isEmpty else { return }
        let now = monotonicSeconds()
        guard now - lastLoginFileCheck >= 1 else { return }
        lastLoginFileCheck = now
        let home = environmentValue("HOME") ?? "/"
        let paths = options.sshLoginFiles.filter { $0 != "-" }.map { SSHLogin.filePath($0, home: home) }
        let changed = paths.contains { path in
            let known = loginFileTimes[path] ?? nil
            let current = Self.modified(path)
            return known?.tv_sec != current?.tv_sec || known?.tv_nsec != current?.tv_nsec
        }
        guard changed else { return }
        var logins: [SSHLogin] = []
        for name in options.sshLoginFiles where name != "-" { logins += (try? loginsFromFile(name)) ?? [] }
        for text in options.sshLogins { logins += (try? SSHLogin.parseList(text)) ?? [] }
        let listed = Set(logins.map(\.login))
        for index in hosts.indices where hosts[index].usable && !listed.contains(hosts[index].login.login) {
            hosts[index].usable = false
        }
        addHosts(logins)
        updateSlots()
    }

    /// The end of the run: each agent is told goodbye (removing `--basefile`s under `--cleanup`),
    /// and each link is closed.
    func closeHosts() {
        let baseFiles = options.cleanup ? options.baseFiles.map(\.escapedBytes) : []
        for host in hosts {
            guard let link = host.link, !link.closed else { continue }
            link.send(RemoteFrame(.goodbye, fields: baseFiles))
            link.drain(seconds: 2)
        }
        for host in hosts { host.link?.close(grace: 2) }
    }

    /// `--env`: the variables carried to remote jobs, `NAME=value` (and a bash function's
    /// `BASH_FUNC_NAME%%`); `_` is every variable but those in ~/.parallel/ignored_vars.
    static func remoteEnvironment(names: [String]) -> [String] {
        guard !names.isEmpty else { return [] }
        var all: [(name: String, entry: String)] = []
        var pointer = environ
        while let entry = pointer.pointee {
            let text = escapedString(cString: entry)
            all.append((String(text.prefix { $0 != "=" }), text))
            pointer += 1
        }
        var chosen: [String] = []
        if names.contains("_") {
            let ignoredFile = (environmentValue("HOME") ?? "/") + "/.parallel/ignored_vars"
            let ignored = Set((readTextFile(ignoredFile) ?? "").split(separator: "\n").map(String.init))
                .union(["_", "PWD", "OLDPWD", "SHLVL", "HOSTNAME", "HOME", "USER", "LOGNAME", "SSH_CLIENT", "SSH_CONNECTION", "SSH_TTY", "SSH_AUTH_SOCK", "TERM", "DISPLAY"])
            chosen += all.filter { !ignored.contains($0.name) }.map(\.entry)
        }
        for name in names where name != "_" {
            chosen += all.filter { $0.name == name || $0.name == "BASH_FUNC_\(name)%%" || $0.name == "BASH_FUNC_\(name)()" }.map(\.entry)
        }
        return chosen
    }
}

/// A remote job's id on its host's link (``Runner/Running/host``), and where its output is written.
struct RemoteHandle {
    var id: UInt64
    var sinkOut: OwnedDescriptor?
    var sinkErr: OwnedDescriptor?
}

/// A command's standard output, or `nil` when it cannot run or fails.
func commandOutput(_ argv: [String]) -> String? {
    var ends: [Int32] = [-1, -1]
    guard let path = executablePath(argv[0]), cworkers_pipe_cloexec(&ends) == 0, let readEnd = OwnedDescriptor(ends[0]) else { return nil }
    let pid = withEscapedCStrings(argv) { argvPointer in path.withEscapedCString { cworkers_spawn_job($0, argvPointer, environ, -1, ends[1], -1, nil, 0, 0) } }
    // Our write end closes now: the read below ends when the command does.
    close(ends[1])
    guard pid > 0 else { return nil }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = chunk.withUnsafeMutableBytes { readRetryingInterrupts(readEnd.raw, into: $0) }
        if count <= 0 { break }
        bytes += chunk[0..<count]
    }
    return waitForExit(pid) == 0 ? String(escaping: bytes) : nil
}
