#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import WorkersTestJobs

/// `workers run -S` over real sshd to two hosts, B and C (network namespaces with sshds of
/// their own): the results and joblog GNU's documentation gives, hostile names as data, a cut
/// link, Ctrl-C, and kill -9 then --resume. In TestHostsTests' suite (an extension), so they
/// never run while another test cuts B's link.
extension TestHostsTests {
    /// A `workers run` the test can signal; its stdout and stderr go to files.
    final class RunProcess {
        let process = Process()
        let directory: URL

        /// `workers run --ssh <the test hosts' ssh> arguments`, started by `launcher` (`salloc …`) if given.
        init(_ arguments: [String], hosts: TestHosts.Hosts, directory: URL, stdin: String = "", mark: String? = nil, launcher: [String] = []) throws {
            self.directory = directory
            let run = ["run", "--ssh", (["ssh"] + hosts.sshOptions).joined(separator: " ")] + arguments
            process.executableURL = URL(fileURLWithPath: launcher.isEmpty ? TestPrograms.workers : "/usr/bin/env")
            process.arguments = launcher.isEmpty ? run : launcher + [TestPrograms.workers] + run
            process.currentDirectoryURL = directory
            var environment = ProcessInfo.processInfo.environment
            environment["PARALLEL_SHELL"] = "/bin/sh"
            environment["SLURM_CONF"] = hosts.slurmConf
            if let mark { environment["WORKERS_TEST_MARK"] = mark }
            process.environment = environment
            _ = FileManager.default.createFile(atPath: directory.path + "/stdout", contents: nil)
            _ = FileManager.default.createFile(atPath: directory.path + "/stderr", contents: nil)
            process.standardOutput = try FileHandle(forWritingTo: directory.appendingPathComponent("stdout"))
            process.standardError = try FileHandle(forWritingTo: directory.appendingPathComponent("stderr"))
            let input = Pipe()
            process.standardInput = input
            try process.run()
            // EPIPE from a run that ended before reading is its answer, not a trap here.
            try? input.fileHandleForWriting.write(contentsOf: Data(stdin.utf8))
            try input.fileHandleForWriting.close()
        }

        /// Waits for the run to end (off Swift's cooperative threads); its status.
        func wait() async throws -> Int32 {
            let process = process
            return try await offThePool { process.waitUntilExit(); return process.terminationStatus }
        }

        var stdout: String { (try? String(contentsOf: directory.appendingPathComponent("stdout"), encoding: .utf8)) ?? "" }
        var stderr: String { (try? String(contentsOf: directory.appendingPathComponent("stderr"), encoding: .utf8)) ?? "" }
    }

    static func scratch() throws -> URL {
        let directory = URL(fileURLWithPath: "/tmp/workers-remote-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    static func rows(_ path: String) -> [[String]] {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").dropFirst().map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
    }

    @Test("workers run -S: two ssh hosts run every job once; -k, --tag, the joblog's Host, --onall, --nonall, --env, --workdir . and --slf as GNU's")
    func runOnTwoSSHHosts() async throws {
        let hosts = try TestHosts.require()
        let directory = try Self.scratch()
        let (b, c) = ("root@\(hosts.b)", "root@\(hosts.c)")
        let inputs = (1...40).map(String.init)
        let run = try RunProcess(["-S", "2/\(b),2/\(c)", "-k", "--joblog", "log", "echo {} $(hostname -I)", ":::"] + inputs, hosts: hosts, directory: directory)
        #expect(try await run.wait() == 0, "\(run.stderr)")
        let lines = run.stdout.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        #expect(lines.map { $0[0] } == inputs)
        // Each job ran where its joblog row says, and both hosts ran jobs.
        let rows = Self.rows(directory.path + "/log")
        #expect(rows.count == 40 && Set(rows.map { $0[0] }) == Set(inputs))
        for row in rows {
            let line = lines[Int(row[0])! - 1]
            #expect(row[1] == (line[1] == hosts.b ? b : c))
        }
        #expect(Set(rows.map { $0[1] }) == [b, c])

        // --nonall and --onall with -k --tag: the host is the tag, its jobs together (GNU's output).
        let nonall = try RunProcess(["-S", "\(b),\(c)", "-k", "--tag", "--nonall", "hostname -I"], hosts: hosts, directory: directory)
        #expect(try await nonall.wait() == 0)
        #expect(nonall.stdout == "\(b)\t\(hosts.b) \n\(c)\t\(hosts.c) \n")
        let onall = try RunProcess(["-S", "\(b),\(c)", "-k", "--tag", "--onall", "echo", ":::", "1", "2"], hosts: hosts, directory: directory)
        #expect(try await onall.wait() == 0)
        #expect(onall.stdout == "\(b)\t1\n\(b)\t2\n\(c)\t1\n\(c)\t2\n")

        // --env carries a value as it is; --workdir . is where we are (relative to home on the far side).
        let value = "a  b 'c' $(d) `e`"
        setenv("WORKERS_TRICKY", value, 1)
        defer { unsetenv("WORKERS_TRICKY") }
        let env = try RunProcess(["-S", c, "--env", "WORKERS_TRICKY", "--workdir", ".", "printf '%s|%s' \"$WORKERS_TRICKY\" \"$(pwd)\" # {}", ":::", "x"], hosts: hosts, directory: directory)
        #expect(try await env.wait() == 0)
        #expect(env.stdout == "\(value)|\(directory.path)")

        // --slf: comments, N/, and a host that refuses the connection, named once; the run goes on.
        try "# the test hosts\n1/\(b)\n\n\(c):2222\n".write(toFile: directory.path + "/hosts", atomically: true, encoding: .utf8)
        let slf = try RunProcess(["--slf", "hosts", "--joblog", "log2", "echo", ":::", "1", "2", "3"], hosts: hosts, directory: directory)
        #expect(try await slf.wait() == 0)
        #expect(slf.stdout.split(separator: "\n").sorted() == ["1", "2", "3"])
        #expect(slf.stderr.components(separatedBy: "Cannot reach \(c):2222").count == 2, "\(slf.stderr)")
        #expect(Set(Self.rows(directory.path + "/log2").map { $0[1] }) == [b])
    }

    @Test("workers run -S: hostile file names are transferred, processed and returned as data; --workdir ... is removed")
    func hostileNamesOverSSH() async throws {
        let hosts = try TestHosts.require()
        let directory = try Self.scratch()
        let names = ["a b", "it's", "$(touch pwned)", "`touch pwned`", "x;touch pwned", "new\nline", "-lead", "back\\slash"]
        for name in names { try Data("data of \(name)\n".utf8).write(to: directory.appendingPathComponent(name)) }
        let run = try RunProcess(["-S", "1/root@\(hosts.b),1/root@\(hosts.c)", "-0", "--workdir", "...", "--trc", "{}.out",
                                  "tr a-z A-Z < ./{} > ./{}.out; pwd >&2"], hosts: hosts, directory: directory, stdin: names.joined(separator: "\0"))
        #expect(try await run.wait() == 0, "\(run.stderr)")
        for name in names {
            #expect((try? String(contentsOf: directory.appendingPathComponent(name + ".out"), encoding: .utf8)) == "DATA OF \(name.uppercased())\n")
        }
        #expect(!FileManager.default.fileExists(atPath: directory.path + "/pwned"))
        let workdirs = run.stderr.split(separator: "\n").map(String.init)
        #expect(workdirs.count == names.count && workdirs.allSatisfy { $0.contains("/.parallel/tmp/") })
        #expect(workdirs.allSatisfy { !FileManager.default.fileExists(atPath: $0) })
    }

    @Test("workers run -S: host C's link cut mid-run: its running jobs run again on B, nothing else is lost, the joblog is complete")
    func cutLinkOverSSH() async throws {
        let hosts = try TestHosts.require()
        let directory = try Self.scratch()
        let (b, c) = ("root@\(hosts.b)", "root@\(hosts.c)")
        let inputs = (1...12).map(String.init)
        // A job on C marks that C runs one: the test's signal to cut C's link.
        let run = try RunProcess(["-S", "2/\(b),2/\(c)", "--lost-after", "\(2 * stressScale)", "--retries", "3", "--joblog", "log",
                                  "[ $PARALLEL_SSHHOST = \(hosts.c) ] && touch \(directory.path)/on-c; sleep 1; echo {}", ":::"] + inputs,
                                 hosts: hosts, directory: directory)
        #expect(await eventually(within: .seconds(20)) { FileManager.default.fileExists(atPath: directory.path + "/on-c") })
        try hosts.run(["ip", "link", "set", "veth-swc", "down"])
        defer { _ = try? hosts.run(["ip", "link", "set", "veth-swc", "up"]) }
        #expect(try await run.wait() == 0, "\(run.stderr)")
        try hosts.run(["ip", "link", "set", "veth-swc", "up"])
        #expect(run.stdout.split(separator: "\n").map(String.init).sorted() == inputs.sorted())
        let rows = Self.rows(directory.path + "/log")
        #expect(rows.map { $0[0] }.sorted() == inputs.sorted())
        #expect(rows.allSatisfy { $0[6] == "0" })
        #expect(run.stderr.components(separatedBy: "Lost \(c)").count == 2, "\(run.stderr)")
        // The agent on C, cut off, ended its jobs by itself.
        #expect(await eventually(within: .seconds(5)) { Self.leftovers(hosts, "c").isEmpty })
    }

    /// What `test-hosts.sh leftovers-<host>` lists: processes in the host's namespace that are
    /// not its daemons.
    static func leftovers(_ hosts: TestHosts.Hosts, _ host: String) -> [String] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [hosts.script, "leftovers-\(host)"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try? process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    @Test("workers run -S: Ctrl-C leaves no job running on any host after 1 s")
    func interruptOverSSH() async throws {
        let hosts = try TestHosts.require()
        let directory = try Self.scratch()
        let mark = mark()
        let run = try RunProcess(["-S", "2/root@\(hosts.b),2/root@\(hosts.c)", "--env", "WORKERS_TEST_MARK", "sleep 60 # {}", ":::", "1", "2", "3", "4", "5"],
                                 hosts: hosts, directory: directory, mark: mark)
        // Four jobs (a shell and its sleep each, or the sleep alone) on the two hosts, and the run itself.
        let onBoth = await eventually(within: .seconds(20)) {
            let onB = markedProcesses(mark, inNamespace: hosts.namespaceB).count
            let onC = markedProcesses(mark, inNamespace: hosts.namespaceC).count
            return onB >= 2 && onC >= 2
        }
        #expect(onBoth)
        kill(run.process.processIdentifier, SIGINT)
        #expect(try await run.wait() == 130)
        #expect(await eventually(within: .seconds(1)) { markedProcesses(mark).isEmpty })
    }

    @Test("workers run -S: kill -9 of the run, then --resume: no job lost, none repeated, nothing left running")
    func killAndResumeOverSSH() async throws {
        let hosts = try TestHosts.require()
        let directory = try Self.scratch()
        let mark = mark()
        let done = directory.path + "/done"
        // Jobs 1-6 finish at once; 7-10 wait for `go` (made after the kill), then finish.
        let command = "[ {} -gt 6 ] && while [ ! -e \(directory.path)/go ]; do sleep 0.05; done; echo {} >> \(done)"
        let arguments = ["-S", "2/root@\(hosts.b),2/root@\(hosts.c)", "--env", "WORKERS_TEST_MARK", "--joblog", "log", command, ":::"] + (1...10).map(String.init)
        let first = try RunProcess(arguments, hosts: hosts, directory: directory, mark: mark)
        let sixDone = await eventually(within: .seconds(20)) {
            let finished = Self.rows(directory.path + "/log").count
            return finished == 6 && markedProcesses(mark).count > 4
        }
        #expect(sixDone)
        kill(first.process.processIdentifier, SIGKILL)
        #expect(try await first.wait() == 9)
        // Its ssh connections end with it; each agent ends its jobs.
        #expect(await eventually(within: .seconds(3)) { markedProcesses(mark).isEmpty })
        _ = FileManager.default.createFile(atPath: directory.path + "/go", contents: nil)
        let second = try RunProcess(["--resume"] + arguments, hosts: hosts, directory: directory, mark: mark)
        #expect(try await second.wait() == 0, "\(second.stderr)")
        let text = (try? String(contentsOfFile: done, encoding: .utf8)) ?? ""
        let ran: [Int] = text.split(separator: "\n").compactMap { Int($0) }.sorted()
        let logged: [Int] = Self.rows(directory.path + "/log").compactMap { Int($0[0]) }.sorted()
        #expect(ran == Array(1...10))
        #expect(logged == Array(1...10))
    }
}

extension TestHostsTests {
    @Test("workers run --slurm in a two-node allocation: an agent a node by srun, every job once, the joblog names the nodes")
    func runOnSlurmNodes() async throws {
        let hosts = try TestHosts.require()
        let directory = try Self.scratch()
        let inputs = (1...30).map(String.init)
        let run = try RunProcess(["--slurm", "-k", "--joblog", "log", "echo {} $PARALLEL_SSHHOST $(hostname -I)", ":::"] + inputs,
                                 hosts: hosts, directory: directory, launcher: ["salloc", "--nodes=2", "--quiet"])
        #expect(try await run.wait() == 0, "\(run.stderr)")
        let lines = run.stdout.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        #expect(lines.map { $0[0] } == inputs)
        // nb is host B's slurmd: its jobs see B's address; na's see A's.
        for line in lines {
            #expect(["na", "nb"].contains(line[1]))
            #expect(line.contains(hosts.b) == (line[1] == "nb"))
        }
        let rows = Self.rows(directory.path + "/log")
        #expect(rows.count == 30 && Set(rows.map { $0[1] }) == ["na", "nb"])
        // Outside an allocation, --slurm says what it needs.
        let outside = try RunProcess(["--slurm", "echo", ":::", "1"], hosts: hosts, directory: directory, launcher: ["env", "-u", "SLURM_JOB_ID"])
        #expect(try await outside.wait() == 255)
        #expect(outside.stderr.contains("inside a Slurm allocation"))
    }
}
