import Foundation
import Testing
import WorkersTestJobs

/// `workers run -S` with a login command that runs the far side here (`--ssh` a script that runs
/// its last argument, as ssh would on the host): the agent, the link and the driver, on every
/// machine, with no sshd. The same over real sshd in network namespaces is in
/// WorkersClusterTests' RemoteRunTests.
@Suite(.timeLimit(.minutes(3))) struct RunRemoteTests {
    /// A stand-in for ssh: logs each start (one line a connection) to `log`, prints `preamble`,
    /// and runs its last argument with sh.
    static func login(in directory: URL, log: String = "logins", preamble: String = "") throws -> String {
        let path = directory.appendingPathComponent("fake-ssh-\(log)").path
        let script = """
        #!/bin/sh
        echo "$*" >> '\(directory.path)/\(log)'
        printf '%s' '\(preamble)'
        for last; do :; done
        exec /bin/sh -c "$last"
        """
        try writeExecutable(script, to: path)
        return path
    }

    @Test func jobsRunThroughOneAgentAHostAndPrintAsLocalOnes() async throws {
        let directory = try RunCommandTests.scratch()
        let ssh = try Self.login(in: directory)
        let inputs = (1...40).map(String.init)
        let remote = try await RunCommandTests.run(["--ssh", ssh, "-S", "2/alpha,2/beta", "-k", "--tag", "--joblog", directory.path + "/log",
                                                    "echo $PARALLEL_SSHHOST $PARALLEL_SEQ; echo err >&2", ":::"] + inputs, directory: directory)
        #expect(remote.status == 0)
        let lines = remote.stdout.split(separator: "\n")
        #expect(lines.count == 40)
        // -k: input order; --tag; each job on one of the two hosts, its own sequence number.
        for (index, line) in lines.enumerated() {
            let words = line.split(whereSeparator: { $0 == "\t" || $0 == " " }).map(String.init)
            #expect(words.count == 3 && words[0] == inputs[index] && ["alpha", "beta"].contains(words[1]) && words[2] == inputs[index])
        }
        #expect(Set(lines.map { $0.split(separator: " ")[0].split(separator: "\t")[1] }) == ["alpha", "beta"])
        #expect(remote.stderr.split(separator: "\n").count == 40)
        // One login a host for forty jobs.
        let logins = try String(contentsOfFile: directory.path + "/logins", encoding: .utf8).split(separator: "\n")
        #expect(logins.count == 2)
        // The joblog's Host column names each job's host.
        let rows = try String(contentsOfFile: directory.path + "/log", encoding: .utf8).split(separator: "\n").dropFirst()
        #expect(rows.count == 40)
        #expect(Set(rows.map { String($0.split(separator: "\t")[1]) }) == ["alpha", "beta"])
    }

    @Test func hostileFileNamesAreTransferredProcessedAndReturnedAsData() async throws {
        let directory = try RunCommandTests.scratch()
        let ssh = try Self.login(in: directory)
        let names = ["a b", "it's", "$(touch pwned)", "`touch pwned`", "x;touch pwned", "new\nline", "-lead", "caf\u{E9}"]
        for name in names { try Data("data of \(name)\n".utf8).write(to: directory.appendingPathComponent(name)) }
        // The far side's home is the scratch directory: `--workdir ...` makes the jobs' directories there.
        let run = try await RunCommandTests.run(["--ssh", ssh, "-S", "1/h1,1/h2", "-0", "--workdir", "...", "--trc", "{}.out",
                                                 "tr a-z A-Z < ./{} > ./{}.out"], stdin: names.joined(separator: "\0"), directory: directory,
                                                environment: ["HOME": directory.path])
        #expect(run.status == 0, "\(run.stderr)")
        for name in names {
            let returned = try String(contentsOf: directory.appendingPathComponent(name + ".out"), encoding: .utf8)
            // tr's a-z is ASCII: é stays é.
            #expect(returned == String("data of \(name)\n".map { $0.isASCII ? Character($0.uppercased()) : $0 }))
        }
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("pwned").path))
        // --workdir ... --cleanup: the jobs' directories were made, and are gone.
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path + "/.parallel/tmp") == [])
    }

    @Test func theEnvironmentAndOutputModesCarryOver() async throws {
        let directory = try RunCommandTests.scratch()
        let ssh = try Self.login(in: directory)
        let value = "a  b 'c' \"d\" $(e) `f`"
        let env = try await RunCommandTests.run(["--ssh", ssh, "-S", "h", "--env", "TRICKY", "printf '%s|' \"$TRICKY\"", ":::", "1"],
                                                directory: directory, environment: ["TRICKY": value])
        #expect(env.stdout == value + "|1|")
        for mode in [["-u"], ["--lb"], ["--lb", "-k"], ["--group"]] {
            let run = try await RunCommandTests.run(["--ssh", ssh, "-S", "2/h"] + mode + ["printf 'one {}\\ntwo {}\\n'", ":::", "1", "2", "3"], directory: directory)
            #expect(run.status == 0)
            #expect(run.stdout.split(separator: "\n").sorted() == ["one 1", "one 2", "one 3", "two 1", "two 2", "two 3"], "\(mode)")
        }
    }

    @Test func aHostThatSpeaksGarbageOrHasNoAgentIsNamedOnceAndTheOthersRunEverything() async throws {
        let directory = try RunCommandTests.scratch()
        let good = try Self.login(in: directory)
        // Garbage after the agent's mark would be a protocol error; garbage and then an exit
        // before it is a login that never ran the agent.
        let garbage = directory.appendingPathComponent("garbage-ssh").path
        try writeExecutable("#!/bin/sh\nprintf '\\0workers-run-agent\\0\\377\\377\\377\\377xyz'\nexec sleep 30\n", to: garbage)
        let missing = directory.appendingPathComponent("missing-ssh").path
        try writeExecutable("#!/bin/sh\necho 'sh: 1: workers: not found' >&2\nexit 127\n", to: missing)
        // A login killed before it says anything: its status is the only reason there is.
        let killed = directory.appendingPathComponent("killed-ssh").path
        try writeExecutable("#!/bin/sh\nkill -9 $$\n", to: killed)
        let run = try await RunCommandTests.run(["-S", "\(good) good", "-S", "\(garbage) bad", "-S", "\(missing) gone", "-S", "\(killed) dead",
                                                 "echo", ":::", "1", "2", "3"], directory: directory)
        #expect(run.status == 0)
        #expect(run.stdout.split(separator: "\n").sorted() == ["1", "2", "3"])
        #expect(run.stderr.components(separatedBy: "Cannot reach \(garbage) bad: protocol error").count == 2, "\(run.stderr)")
        #expect(run.stderr.components(separatedBy: "Cannot reach \(missing) gone: sh: 1: workers: not found").count == 2, "\(run.stderr)")
        #expect(run.stderr.components(separatedBy: "Cannot reach \(killed) dead: the connection ended (killed-ssh was killed by signal 9)").count == 2, "\(run.stderr)")
        // With no host left, the run says so and fails.
        let none = try await RunCommandTests.run(["-S", "\(missing) gone", "echo", ":::", "1"], directory: directory)
        #expect(none.status == 255 && none.stderr.contains("no host to run jobs on"))
        // --filter-hosts: silently.
        let filtered = try await RunCommandTests.run(["--filter-hosts", "-S", "\(good) good,\(missing) gone", "echo", ":::", "1"], directory: directory)
        #expect(filtered.status == 0 && filtered.stderr.isEmpty)
    }

    @Test func anSshloginFileIsReadAgainWhenItChanges() async throws {
        let directory = try RunCommandTests.scratch()
        let ssh = try Self.login(in: directory)
        let file = directory.path + "/hosts"
        try "# one host to start with\n1/\(ssh) alpha\n".write(toFile: file, atomically: true, encoding: .utf8)
        // The first job adds a host; when it ends the file is read again, and the next two jobs
        // (started together) run on both.
        let run = try await RunCommandTests.run(["--slf", file, "-k",
                                                 "[ {} = 1 ] && echo '1/\(ssh) beta' >> \(file); sleep 0.3; echo {} $PARALLEL_SSHHOST",
                                                 ":::", "1", "2", "3"], directory: directory)
        #expect(run.status == 0, "\(run.stderr)")
        let hosts = run.stdout.split(separator: "\n").map { String($0.split(separator: " ")[1]) }
        #expect(hosts.first == "alpha" && Set(hosts.dropFirst()) == ["alpha", "beta"], "\(run.stdout)")
    }

    @Test func failuresTimeoutsAndRetriesPreferAnotherHost() async throws {
        let directory = try RunCommandTests.scratch()
        let ssh = try Self.login(in: directory)
        // Fails on the first host it meets, succeeds on another: with --retries 2, the second
        // attempt goes to the host it has not failed on, and succeeds.
        for _ in 0..<3 {
            try? FileManager.default.removeItem(atPath: directory.path + "/ran")
            let run = try await RunCommandTests.run(["--ssh", ssh, "-S", "1/h1,1/h2", "--retries", "2",
                                                     "[ -e '\(directory.path)/ran' ] && [ \"$(cat '\(directory.path)/ran')\" != $PARALLEL_SSHHOST ] || { echo $PARALLEL_SSHHOST > '\(directory.path)/ran'; exit 3; } # {}",
                                                     ":::", "a"], directory: directory)
            #expect(run.status == 0, "\(run.stderr)")
        }
        let exits = try await RunCommandTests.run(["--ssh", ssh, "-S", "h", "-k", "--timeout", "0.5", "--joblog", directory.path + "/log2",
                                                   "exit {}; sleep 60", ":::", "0", "3", "9"], directory: directory)
        #expect(exits.status == 2)
        let rows = try String(contentsOfFile: directory.path + "/log2", encoding: .utf8).split(separator: "\n").dropFirst()
        #expect(rows.map { $0.split(separator: "\t")[6] }.sorted() == ["0", "3", "9"])
        let timeout = try await RunCommandTests.run(["--ssh", ssh, "-S", "h", "--timeout", "0.5", "sleep", ":::", "60"], directory: directory)
        #expect(timeout.status == 1 && timeout.stderr.contains("timed out"))
    }
}
