#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// `workers-bench run`: `workers run` against GNU parallel and `xargs -P` on the same command
/// lines, interleaved, each timed as a whole pipeline with its children's CPU time.
struct RunSuite {
    static let ours = "workers run"
    var runs: Int
    var jobs: Int
    var workers: String
    /// The small `workers-run` executable (no Foundation), measured beside `workers run` when given.
    var workersRun: String?
    var pipeLines = 15_000_000
    /// Remote rows: the sshlogins (two hosts), the ssh command, the trivial jobs for us and
    /// for GNU (whose remote jobs are 100× slower: fewer, compared as jobs/s).
    var sshLogins: [String] = []
    var ssh = "ssh"
    var remoteJobs = 1_000
    var gnuRemoteJobs = 100
    /// Slurm rows (`salloc` must work here): one node and two, against local runs of as many slots.
    var slurm = false
    var progress: (String) -> Void

    func run() throws -> [Measurement] {
        let parallel = Self.findGNUParallel(progress: progress)
        // Its name with its version, asked once (each `parallel --version` costs a Perl start).
        let gnu = parallel.map { "GNU parallel \(Self.parallelVersion($0))" }
        var systems: [(String, String)] = [
            (Self.ours, "seq \(jobs) | \(workers) run -j2 true"),
            ("xargs -P2 -n1", "seq \(jobs) | xargs -P2 -n1 true"),
        ]
        if let workersRun { systems.insert(("workers-run", "seq \(jobs) | \(workersRun) -j2 true"), at: 1) }
        if let parallel, let gnu { systems.append((gnu, "seq \(jobs) | \(parallel) --will-cite -j2 true")) }
        progress("trivial jobs: \(jobs) × `true` at -j2 × \(runs) runs, interleaved")
        var results = try Self.measure(systems, runs: runs, workload: "\(jobs) trivial jobs -j2") { wall, cpu in
            String(format: "%.0f jobs/s, %.2f ms CPU per job", Double(jobs) / wall, cpu / Double(jobs) * 1_000)
        }
        if parallel == nil {
            results.append(Measurement(suite: "run", workload: "\(jobs) trivial jobs -j2", system: "GNU parallel", unit: "wall", samples: [], note: "not installed and could not be installed (apt-get install parallel)"))
        }

        progress("start of one job × \(runs * 4) runs")
        var starts: [(String, String)] = [(Self.ours, "\(workers) run true ::: 1")]
        if let workersRun { starts.append(("workers-run", "\(workersRun) true ::: 1")) }
        // The floor: the shell that times each command, starting the job alone.
        starts.append(("/bin/true alone (floor)", "/bin/true"))
        if let parallel, let gnu { starts.append((gnu, "\(parallel) --will-cite true ::: 1")) }
        results += try Self.measure(starts, runs: runs * 4, workload: "start of one job")
        // --pipe: about 100 MB of lines cut into 1 MiB blocks, each counted by `wc -l`.
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("workers-bench-pipe-\(getpid()).txt").path
        defer { unlink(file) }
        _ = try Self.time("seq 1 \(pipeLines) > \(file)")
        var size = stat()
        stat(file, &size)
        let megabytes = Double(size.st_size) / 1_000_000
        progress(String(format: "--pipe: %.0f MB of lines in 1 MiB blocks to wc -l × %d runs", megabytes, runs))
        var pipes: [(String, String)] = [(Self.ours, "\(workers) run --pipe --block 1M -j2 wc -l < \(file)")]
        var pipeParts: [(String, String)] = [(Self.ours, "\(workers) run --pipe-part -a \(file) --block 1M -j2 wc -l")]
        if let parallel, let gnu {
            pipes.append((gnu, "\(parallel) --will-cite --pipe --block 1M -j2 wc -l < \(file)"))
            pipeParts.append((gnu, "\(parallel) --will-cite --pipe-part -a \(file) --block 1M -j2 wc -l"))
        }
        let throughput = { (wall: Double, _: Double) in String(format: "%.0f MB/s", megabytes / wall) }
        results += try Self.measure(pipes, runs: runs, workload: "--pipe 1M blocks", note: throughput)
        results += try Self.measure(pipeParts, runs: runs, workload: "--pipe-part 1M blocks", note: throughput)
        if !sshLogins.isEmpty { results += try remote(parallel: parallel, gnu: gnu) }
        if slurm { results += try slurmRows() }
        return results
    }

    /// `-S 2/hostA,2/hostB true`: ours (one agent a host) and GNU's (an ssh a job; and with
    /// --controlmaster), as jobs/s; and each one's remote start latency: the job's own clock
    /// reading minus the joblog's start time, median of many one-at-a-time jobs.
    func remote(parallel: String?, gnu: String?) throws -> [Measurement] {
        let logins = sshLogins.map { "2/\($0)" }.joined(separator: ",")
        let quotedSSH = "'" + ssh.replacingOccurrences(of: "'", with: "'\\''") + "'"
        let rate = { (count: Int) in { (wall: Double, _: Double) in String(format: "%.0f jobs/s (%d jobs)", Double(count) / wall, count) } }
        progress("remote: \(remoteJobs) trivial jobs on -S \(logins) (GNU: \(gnuRemoteJobs)) × \(runs) runs")
        var results = try Self.measure([(Self.ours, "seq \(remoteJobs) | \(workers) run --ssh \(quotedSSH) -S \(logins) true")], runs: runs,
                                       workload: "remote trivial jobs -S 2/A,2/B", note: rate(remoteJobs))
        var latencies: [(String, String)] = [(Self.ours, "\(workers) run --ssh \(quotedSSH) -S 1/\(sshLogins[0])")]
        if let parallel, let gnu {
            results += try Self.measure([(gnu, "seq \(gnuRemoteJobs) | \(parallel) --will-cite --ssh \(quotedSSH) -S \(logins) true")], runs: runs,
                                        workload: "remote trivial jobs -S 2/A,2/B", note: rate(gnuRemoteJobs))
            results += try Self.measure([(gnu + " --controlmaster", "seq \(gnuRemoteJobs) | \(parallel) --will-cite --controlmaster --ssh \(quotedSSH) -S \(logins) true")],
                                        runs: runs, workload: "remote trivial jobs -S 2/A,2/B", note: rate(gnuRemoteJobs))
            latencies.append((gnu, "\(parallel) --will-cite --ssh \(quotedSSH) -S 1/\(sshLogins[0])"))
        }
        progress("remote start latency: 100 jobs one at a time on \(sshLogins[0])")
        for (name, command) in latencies {
            let log = FileManager.default.temporaryDirectory.appendingPathComponent("workers-bench-latency-\(getpid()).log").path
            let out = log + ".out"
            defer { unlink(log); unlink(out) }
            let count = name == Self.ours ? 100 : 30
            // -N0: `date` alone, no input appended (ours runs it without a shell); the tag is the
            // job's sequence number, the joblog's first column.
            _ = try Self.time("seq \(count) | \(command) -N0 --joblog \(log) --tagstring '{#}' date +%s.%N > \(out)")
            let started = Dictionary(uniqueKeysWithValues: ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").dropFirst()
                .compactMap { row -> (String, Double)? in
                    let columns = row.split(separator: "\t")
                    guard columns.count > 2, let start = Double(columns[2]) else { return nil }
                    return (String(columns[0]), start)
                })
            // The job's clock, minus when the driver started it.
            let samples = ((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").split(separator: "\n").compactMap { line -> Double? in
                let parts = line.split(separator: "\t")
                guard parts.count == 2, let ran = Double(parts[1]), let start = started[String(parts[0])] else { return nil }
                return ran - start
            }
            results.append(Measurement(suite: "run", workload: "remote start latency (one job at a time)", system: name, unit: "wall", samples: samples,
                                       note: String(format: "median %.2f ms over %d jobs", median(samples) * 1_000, samples.count)))
        }
        return results
    }

    /// `--slurm` in an allocation of one node (2 CPUs) and of two, against a local run with as
    /// many slots; the allocation's own time (`salloc … true`) is measured beside and taken off.
    func slurmRows() throws -> [Measurement] {
        var results: [Measurement] = []
        for nodes in [1, 2] {
            let allocate = "salloc --quiet --nodes=\(nodes) --cpus-per-task=2"
            progress("--slurm on \(nodes) node(s): \(remoteJobs) trivial jobs × \(runs) runs")
            let rows = try Self.measure([
                ("salloc alone", "\(allocate) true"),
                (Self.ours + " --slurm", "\(allocate) sh -c 'seq \(remoteJobs) | \(workers) run --slurm true'"),
                (Self.ours + " -j\(2 * nodes) (local)", "seq \(remoteJobs) | \(workers) run -j\(2 * nodes) true"),
            ], runs: runs, workload: "--slurm \(nodes) node(s), \(remoteJobs) trivial jobs")
            let floor = median(rows[0].samples)
            let slurm = median(rows[1].samples) - floor
            let local = median(rows[2].samples)
            results += rows.enumerated().map { index, row in
                var row = row
                if index == 1 { row.note = String(format: "%.0f jobs/s less the allocation; %.2f× the local rate", Double(remoteJobs) / slurm, local / slurm) }
                if index == 2 { row.note = String(format: "%.0f jobs/s", Double(remoteJobs) / local) }
                return row
            }
        }
        return results
    }

    /// Each system's command timed `runs` times, the systems interleaved run by run (so a busy
    /// moment of the machine falls on all of them); one measurement each, its note from the
    /// median wall and CPU seconds.
    static func measure(_ systems: [(String, String)], runs: Int, workload: String,
                        note: ((_ wall: Double, _ cpu: Double) -> String)? = nil) throws -> [Measurement] {
        var wall: [String: [Double]] = [:]
        var cpu: [String: [Double]] = [:]
        for _ in 0..<runs {
            for (name, command) in systems {
                let (seconds, cpuSeconds) = try time(command)
                wall[name, default: []].append(seconds)
                cpu[name, default: []].append(cpuSeconds)
            }
        }
        return systems.map { name, _ in
            let samples = wall[name] ?? []
            return Measurement(suite: "run", workload: workload, system: name, unit: "wall", samples: samples,
                               note: note?(median(samples), median(cpu[name] ?? [])))
        }
    }

    /// Wall seconds and children's CPU seconds of `/bin/sh -c command`, its output discarded.
    ///
    /// Spawned and reaped here (posix_spawn, waitpid), not by Foundation's `Process`: after
    /// `parallel --controlmaster` (which leaves an `ssh -M` behind), `waitUntilExit` never saw
    /// the shell end, and the suite hung on a zombie.
    static func time(_ command: String) throws -> (Double, Double) {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        var before = rusage()
        getrusage(RUSAGE_CHILDREN.rawValue, &before)
        let start = Date()
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/sh"), strdup("-c"), strdup(command), nil]
        defer { for pointer in argv { free(pointer) } }
        // In a process group of its own: what it leaves behind (`parallel --controlmaster`
        // leaves a Perl process that never ends) is ended with it.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)
        let spawned = posix_spawn(&pid, "/bin/sh", &actions, &attributes, argv, environ)
        guard spawned == 0 else { throw POSIXError(POSIXErrorCode(rawValue: spawned) ?? .EIO) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0, errno == EINTR {}
        kill(-pid, SIGKILL)
        let wall = Date().timeIntervalSince(start)
        var after = rusage()
        getrusage(RUSAGE_CHILDREN.rawValue, &after)
        func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
        let cpu = seconds(after.ru_utime) + seconds(after.ru_stime) - seconds(before.ru_utime) - seconds(before.ru_stime)
        return (wall, cpu)
    }

    /// GNU parallel's path, installing Debian's package first when it is missing and we are root.
    static func findGNUParallel(progress: (String) -> Void) -> String? {
        if let path = which("parallel"), isGNU(path) { return path }
        guard geteuid() == 0 else { return nil }
        progress("GNU parallel is missing: apt-get install -y parallel")
        _ = try? Self.time("apt-get install -y -qq parallel >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq parallel) >/dev/null 2>&1")
        if let path = which("parallel"), isGNU(path) { return path }
        return nil
    }

    static func which(_ program: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/\(program)" }.first { access($0, X_OK) == 0 }
    }

    static func isGNU(_ path: String) -> Bool { parallelVersion(path) != "?" }

    static func parallelVersion(_ path: String) -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = ["--version"]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return "?" }
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard let first = text.split(separator: "\n").first, first.hasPrefix("GNU parallel") else { return "?" }
        return String(first.dropFirst("GNU parallel ".count))
    }
}

private func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return .nan }
    return sorted[sorted.count / 2]
}
