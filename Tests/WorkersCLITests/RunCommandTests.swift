import Foundation
import Testing
import WorkersTestJobs

/// `workers run` end to end: real jobs, compared with GNU parallel's documented output and exit
/// status (GNU parallel itself is not needed).
@Suite(.timeLimit(.minutes(3))) struct RunCommandTests {
    struct Output {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs `workers run …` (or `executable` with `arguments` as they are) with `stdin` as its
    /// standard input, in `directory` if given; its stdout goes to `stdoutFile` when given (and
    /// `stdout` is then empty).
    static func run(_ arguments: [String], stdin: String = "", directory: URL? = nil, environment: [String: String] = [:],
                    executable: URL? = nil, stdoutFile: String? = nil) async throws -> Output {
        try await offThePool {
            try runBlocking(arguments, stdin: stdin, directory: directory, environment: environment, executable: executable, stdoutFile: stdoutFile)
        }
    }

    static func runBlocking(_ arguments: [String], stdin: String, directory: URL?, environment: [String: String],
                            executable: URL?, stdoutFile: String?) throws -> Output {
        let process = Process()
        process.executableURL = executable ?? WorkersBinaryTests.binary
        process.arguments = executable == nil ? ["run"] + arguments : arguments
        if let directory { process.currentDirectoryURL = directory }
        var env = ProcessInfo.processInfo.environment
        env["PARALLEL_SHELL"] = "/bin/sh"
        for (key, value) in environment { env[key] = value }
        process.environment = env
        let input = Pipe(), out = Pipe(), err = Pipe()
        process.standardInput = input
        if let stdoutFile {
            _ = FileManager.default.createFile(atPath: stdoutFile, contents: nil)
            process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: stdoutFile))
            try out.fileHandleForWriting.close()
        } else {
            process.standardOutput = out
        }
        process.standardError = err
        try process.run()
        // A run that ends without reading all its input (it had ::: inputs, or failed first)
        // closes the pipe: EPIPE is its answer, not the test's failure (`write(_:)` would trap).
        try? input.fileHandleForWriting.write(contentsOf: Data(stdin.utf8))
        try input.fileHandleForWriting.close()
        let errors = Thread.detachNewThreadReturning { err.fileHandleForReading.readDataToEndOfFile() }
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Output(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self), stderr: String(decoding: errors.value, as: UTF8.self))
    }

    static func scratch() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("workers-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    @Test func stdinLinesAndTripleColonArguments() async throws {
        let lines = try await Self.run(["-k", "echo", "x"], stdin: "1\n2\n3\n")
        #expect(lines.status == 0)
        #expect(lines.stdout == "x 1\nx 2\nx 3\n")
        let product = try await Self.run(["-k", "echo", "{1}{2}", ":::", "a", "b", ":::", "1", "2"])
        #expect(product.stdout == "a1\na2\nb1\nb2\n")
        let linked = try await Self.run(["-k", "echo", "{1}{2}", ":::", "a", "b", "c", ":::+", "1", "2"])
        #expect(linked.stdout == "a1\nb2\n")
    }

    @Test func keepOrderTagAndGroupedOutput() async throws {
        let output = try await Self.run(["-j3", "-k", "--tag", "sleep 0.0{}; echo out{}; echo err{} >&2", ":::", "3", "1", "2"])
        #expect(output.status == 0)
        #expect(output.stdout == "3\tout3\n1\tout1\n2\tout2\n")
        #expect(output.stderr == "3\terr3\n1\terr1\n2\terr2\n")
    }

    @Test func outputCanWaitInFilesOnDiskInstead() async throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let output = try await Self.run(["--tmpdir", directory.path, "-k", "echo", ":::", "a", "b"])
        #expect(output.stdout == "a\nb\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)  // unlinked
    }

    @Test func groupedOutputNeverMixesTwoJobs() async throws {
        // Each job prints 200 lines in small writes; grouped, each job's lines stay together.
        let output = try await Self.run(["-j4", "for i in $(seq 200); do echo {}-$i; done", ":::", "a", "b", "c", "d"])
        let prefixes = output.stdout.split(separator: "\n").map { $0.split(separator: "-")[0] }
        var runs = 1
        for (before, after) in zip(prefixes, prefixes.dropFirst()) where before != after { runs += 1 }
        #expect(prefixes.count == 800)
        #expect(runs == 4)
    }

    @Test func exitStatusIsTheNumberOfFailedJobs() async throws {
        let output = try await Self.run(["exit {}", ":::", "0", "1", "2", "0", "3"])
        #expect(output.status == 3)
        // GNU prints nothing more; the summary is only for a terminal.
        #expect(output.stderr == "")
        let many = try await Self.run(["-j8", "exit 1", ":::"] + (1...102).map(String.init))
        #expect(many.status == 101)
    }

    @Test func badOptionsExit255AndNameThemselves() async throws {
        let unknown = try await Self.run(["--frobnicate", "echo"])
        #expect(unknown.status == 255)
        #expect(unknown.stderr.contains("--frobnicate"))
        let unsupported = try await Self.run(["--tmux", "echo", ":::", "a"])
        #expect(unsupported.status == 255)
        #expect(unsupported.stderr.contains("--tmux is not supported"))
        // A host that does not exist is named, and with no other host the run fails.
        let nowhere = try await Self.run(["--sshlogin", "no-such-host.invalid", "echo", ":::", "a"])
        #expect(nowhere.status == 255)
        #expect(nowhere.stderr.contains("Cannot reach no-such-host.invalid") && nowhere.stderr.contains("no host to run jobs on"))
    }

    @Test func haltNowOnFirstFailureReturnsItsStatus() async throws {
        let output = try await Self.run(["-j1", "--halt", "now,fail=1", "exit {}", ":::", "0", "7", "0", "0"])
        #expect(output.status == 7)
        // parallel -j1 --halt now,fail=1 'echo {}; exit {}' ::: 0 1 2 (GNU 20221122, "parallel:" as ours)
        let named = try await Self.run(["-j1", "--halt", "now,fail=1", "echo {}; exit {}", ":::", "0", "1", "2"])
        #expect(named.stdout == "0\n1\n")
        #expect(named.stderr == "workers run: This job failed:\necho 1; exit 1\n")
        #expect(named.status == 1)
    }

    /// Inputs are bytes: a Latin-1 line on stdin, a `:::` argument and a file name that are not
    /// UTF-8 reach the command, the tag and the joblog unchanged (GNU: `c a f 351`).
    @Test func bytesThatAreNotUTF8PassThroughUnchanged() async throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let binary = WorkersBinaryTests.binary.path
        let script = """
            printf 'caf\\351\\n' | '\(binary)' run echo | od -An -c
            '\(binary)' run --tag echo ::: $'n\\351e' | od -An -c
            printf 'x' > $'f\\351'; '\(binary)' run --joblog log cat ::: $'f\\351' | od -An -c
            cut -f9 log | tail -1 | od -An -c
            """
        let output = try await Self.run(["-c", script], directory: directory, executable: URL(fileURLWithPath: "/bin/bash"))
        let lines = output.stdout.split(separator: "\n").map { $0.split(separator: " ").joined(separator: " ") }
        #expect(lines.prefix(3) == ["c a f 351 \\n", "n 351 e \\t n 351 e \\n", "x"])
        // The joblog has the command as run, the byte inside its quoting.
        #expect(lines.count == 4 && lines[3].contains("f 351") && !lines[3].contains("357"))
    }

    /// More of GNU 20221122's behaviour, each case's output and status as GNU gives them.
    @Test func gnuBehavioursCaseByCase() async throws {
        // echo | parallel -r -N1 --pipe cat | wc -l  →  0
        #expect(try await Self.run(["-r", "-N1", "--pipe", "cat"], stdin: "\n").stdout == "")
        // seq 3 | parallel --pipe  →  status 255
        #expect(try await Self.run(["--pipe"], stdin: "1\n").status == 255)
        // parallel --files --lb echo ::: a  →  a file name
        #expect(try await Self.run(["--files", "--lb", "echo", ":::", "a"]).stdout.hasPrefix("/"))
        // printf 'foo\0bar\n' | parallel echo  →  foo\0bar, three warnings, status 0
        let nul = try await Self.run(["printf '%s\\n'"], stdin: "foo\0bar\n")  // not echo: dash's reads \0
        #expect(nul.stdout == "foo\\0bar\n" && nul.status == 0 && nul.stderr.contains("A NUL character in the input was replaced"))
        // parallel echo {-1} ::: a ::: b  →  b
        #expect(try await Self.run(["echo", "{-1}", "{-2}", ":::", "a", ":::", "b"]).stdout == "b a\n")
        // printf 'l1\nl2\nl3\n' | parallel -k -n1 -m echo  →  one a line
        #expect(try await Self.run(["-k", "-n1", "-m", "echo"], stdin: "l1\nl2\nl3\n").stdout == "l1\nl2\nl3\n")
        // -s N keeps the line and its NUL within N: 'echo 88888888 999999999' is 23 bytes
        #expect(try await Self.run(["-j1", "-k", "-X", "-s", "23", "echo"], stdin: "88888888\n999999999\n").stdout == "88888888\n999999999\n")
        #expect(try await Self.run(["-j1", "-k", "-X", "-s", "10", "echo"], stdin: "a\nb\n").stdout == "a b\n")
        // seq 30000 | parallel -X 'echo {} | wc -c': lines within the system's limit, {} alone
        // repeated (30,000 inputs make two lines; more only slow a sanitized run down)
        let long = try await Self.run(["-X", "-k", "echo {} | wc -c"], stdin: (1...30_000).map { "\($0)\n" }.joined())
        let sizes = long.stdout.split(separator: "\n").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        let expectedBytes: Int = (1...30_000).reduce(0) { $0 + String($1).utf8.count + 1 }
        #expect(long.status == 0)
        #expect(sizes.count >= 2)
        #expect(sizes.reduce(0, +) == expectedBytes)
        // printf 'a\n\nb\n' | parallel -k -d '\n\n' echo X{}X  →  XaX, Xb<newline>X
        #expect(try await Self.run(["-k", "-d", "\\n\\n", "echo X{}X"], stdin: "a\n\nb\n").stdout == "XaX\nXb\nX\n")
        // seq 4 | parallel -j2 -k --pipe -N2 --tagstring {%} cat  →  the slots, 1 and 2
        #expect(try await Self.run(["-j2", "-k", "--pipe", "-N2", "--tagstring", "{%}", "cat"], stdin: "1\n2\n3\n4\n").stdout
            == "1\t1\n1\t2\n2\t3\n2\t4\n")
        // printf 'a\v\nb\nc\n' | parallel -k -L1 echo  →  a<VT>b, c
        #expect(try await Self.run(["-k", "-L1", "echo"], stdin: "a\u{0B}\nb\nc\n").stdout == "a\u{0B}b\nc\n")
        // echo 'cho hi' | parallel e{}  →  hi (the input is part of the command word)
        #expect(try await Self.run(["e{}"], stdin: "cho hi\n").stdout == "hi\n")
        // seq 4 | parallel --pipe -N2 -k 'test -p /dev/stdin && echo pipe; wc -l'  →  a pipe, as GNU's
        #expect(try await Self.run(["--pipe", "-N2", "-k", "test -p /dev/stdin && echo pipe; wc -l"], stdin: "1\n2\n3\n4\n").stdout
            .split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) } == ["pipe", "2", "pipe", "2"])
        // Out of file descriptors: fewer jobs at once, none failed. (Not under ThreadSanitizer,
        // whose runtime takes descriptors of its own and whose vfork is a fork: a job that runs
        // out inside the child shows as a 127, not as the spawn's EMFILE.)
        if ProcessInfo.processInfo.environment["WORKERS_STRESS"] != "1" {
            let limited = try await Self.run(["-c", "ulimit -n 64; seq 40 | '\(WorkersBinaryTests.binary.path)' run -k -j0 'echo {}; sleep 0.2'"],
                                             executable: URL(fileURLWithPath: "/bin/bash"))
            #expect(limited.stdout == (1...40).map { "\($0)\n" }.joined())
            #expect(limited.status == 0)
            #expect(limited.stderr.contains("Only enough file handles"))
        }
    }

    /// SIGHUP: no new jobs start; the running ones finish and the run succeeds (GNU's).
    @Test func sighupLetsRunningJobsFinish() async throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        // FIFOs are the latches: each job says it started on `started`, then blocks reading a
        // line from `go`; the runner's first stderr line, read from `errors`, says it took the
        // SIGHUP. The driver holds each FIFO open read-write, so no open blocks and none ends.
        let script = "echo {} > started; read _ < go; echo {}"
        let binary = WorkersBinaryTests.binary.path
        let driver = """
            mkfifo started go errors; exec 3<>started 4<>go 5<>errors
            '\(binary)' run -j2 -k '\(script)' ::: 1 2 3 4 2>errors & pid=$!
            read -u 3 _; read -u 3 _
            kill -HUP $pid; read -u 5 acknowledged
            printf '\\n\\n\\n\\n' >&4
            wait $pid; echo "exit $?"; echo "$acknowledged"
            """
        let output = try await Self.run(["-c", driver], directory: directory, executable: URL(fileURLWithPath: "/bin/bash"))
        // Jobs 3 and 4 never start: had they, their lines would be in the output (`go` has a
        // line for them too, so they could not hang it).
        #expect(output.stdout == "1\n2\nexit 0\nworkers run: SIGHUP received. No new jobs will be started.\n")
    }

    /// `seq 1000 | parallel … | head -1`: once stdout's reader is gone the run ends by SIGPIPE,
    /// as GNU's and xargs' do, instead of running every job for nobody.
    @Test func aClosedStdoutEndsTheRunBySigpipe() async throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let script = "seq 1000 | '\(WorkersBinaryTests.binary.path)' run -k -j2 'echo {}; touch {}' | head -1; echo \"${PIPESTATUS[1]}\""
        let output = try await Self.run(["-c", script], directory: directory, executable: URL(fileURLWithPath: "/bin/bash"))
        #expect(output.stdout == "1\n141\n")
        let ran = try FileManager.default.contentsOfDirectory(atPath: directory.path).count
        #expect(ran < 1000)
    }

    /// GNU's command-line forms end to end: bundled and abbreviated options, `$PARALLEL`,
    /// `--verbose` on stderr, `--joblog -` on stdout, `-d` splitting `:::` values, and the
    /// time-out warning's wording (outputs recorded from GNU parallel 20221122).
    @Test func gnuCommandLineFormsEndToEnd() async throws {
        let bundled = try await Self.run(["-kv", "echo", ":::", "a"])
        #expect(bundled.stdout == "echo a\na\n" && bundled.status == 0)
        let environment = try await Self.run(["echo", ":::", "a"], environment: ["PARALLEL": "--tag"])
        #expect(environment.stdout == "a\ta\n")
        let verbose = try await Self.run(["--verb", "echo", ":::", "a"])
        #expect(verbose.stdout == "a\n" && verbose.stderr == "echo a\n")
        let joblog = try await Self.run(["--joblog", "-", "true", ":::", "1"])
        let columns = joblog.stdout.split(separator: "\n").map { $0.split(separator: "\t", omittingEmptySubsequences: false) }
        #expect(columns.map { [$0[0], $0[6], $0[8]] } == [["Seq", "Exitval", "Command"], ["1", "0", "true 1"]])
        let delimited = try await Self.run(["-k", "-d", ",", "echo", ":::", "a,b"])
        #expect(delimited.stdout == "a\nb\n")
        let timedOut = try await Self.run(["--timeout", "0.2s", "sleep {}", ":::", "30"])
        #expect(timedOut.stderr == "workers run: Warning: This job was killed because it timed out:\nworkers run: Warning: sleep 30\n")
        #expect(timedOut.status == 1)
        let ambiguous = try await Self.run(["--ta", "echo"])
        #expect(ambiguous.status == 255 && ambiguous.stderr.contains("--ta is ambiguous"))
    }

    @Test func retriesPrintOnlyTheLastAttempt() async throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        // Fails twice (leaving a mark each time), then succeeds.
        let script = ": {}; n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; echo attempt $n; [ $n -ge 3 ]"
        let output = try await Self.run(["--retries", "3", script, ":::", "x"], directory: directory)
        #expect(output.status == 0)
        #expect(output.stdout == "attempt 3\n")
    }

    @Test func timeoutKillsTheJobAndTheJoblogSaysSo() async throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let log = directory.appendingPathComponent("jobs.log").path
        let output = try await Self.run(["-j3", "--joblog", log, "--timeout", "2", "printf ab; sleep {}; exit {}", ":::", "0", "1", "30"])
        #expect(output.status == 2)  // exit 1, and the one that timed out
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        #expect(lines.first == "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand")
        let rows = lines.dropFirst().map { $0.split(separator: "\t", omittingEmptySubsequences: false) }
        #expect(rows.count == 3)
        #expect(rows.allSatisfy { $0.count == 9 && $0[1] == ":" })
        let timedOut = rows.first { $0[0] == "3" }
        #expect(timedOut?[6] == "-1")
        #expect(timedOut?[7] == "15")
        #expect(timedOut?[8] == "printf ab; sleep 30; exit 30")
        #expect(rows.allSatisfy { $0[5] == "2" })  // Receive: the bytes of stdout, as GNU
        #expect(rows.first { $0[0] == "2" }?[6] == "1")
        #expect(rows.allSatisfy { $0[3].count == 10 })  // %10.3f
    }

    @Test func aJobThatIgnoresTermIsKilledAtTheEndOfTheSequence() async throws {
        let start = Date()
        let output = try await Self.run(["--timeout", "0.3", "trap '' TERM; sleep 30; : {}", ":::", "x"])
        #expect(output.status == 1)
        // Killed, not left to finish: its sleep alone would take 30 s. (Under ThreadSanitizer with the
        // whole suite running, the kill sequence and the runner's start took 11 s.)
        #expect(Date().timeIntervalSince(start) < 25)
        #expect(output.stderr.contains("timed out"))
    }

    @Test func pipeSplitsStdinIntoRecordsForEachJob() async throws {
        // GNU: `seq 10 | parallel --pipe -N3 wc -l` → 3 3 3 1.
        let records = try await Self.run(["--pipe", "-k", "-N3", "wc", "-l"], stdin: (1...10).map { "\($0)\n" }.joined())
        #expect(records.status == 0)
        #expect(records.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) } == ["3", "3", "3", "1"])
        // Blocks end on the last newline within each 10 KiB GNU reads (GNU 20221122: 10238
        // 10240 10240 …), and every byte arrives once, in order with -k.
        let input = (1...20_000).map { "\($0)\n" }.joined()
        let blocks = try await Self.run(["--pipe", "-k", "--block", "10K", "cat"], stdin: input)
        #expect(blocks.stdout == input)
        let sizes = try await Self.run(["--pipe", "-k", "--block", "10K", "wc", "-c"], stdin: input)
        let counts = sizes.stdout.split(separator: "\n").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        #expect(counts.count > 5)
        #expect(counts.dropLast().allSatisfy { $0 > 10 * 1024 - 8 && $0 <= 10 * 1024 })
    }

    @Test func lineBufferMixesJobsByWholeLines() async throws {
        // Ordered by handshakes through files, not by timing: a prints a1, then b prints b1, then a
        // prints its second line in two pieces.
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let wait = { (file: String) in "until [ -e \(directory.path)/\(file) ]; do sleep 0.01; done" }
        let script = "if [ {} = a ]; then echo a1; touch \(directory.path)/a1; \(wait("b1")); printf 'a'; sleep 0.1; echo 2; "
            + "else \(wait("a1")); echo b1; touch \(directory.path)/b1; fi"
        let output = try await Self.run(["-j2", "--line-buffer", "--tag", script, ":::", "a", "b"])
        #expect(output.status == 0)
        #expect(output.stdout == "a\ta1\nb\tb1\na\ta2\n")
    }

    /// GNU: "With --keep-order --line-buffer will output lines from the first job continuously
    /// while it is running, then lines from the second job while that is running." Job a (first)
    /// waits until its own first line has reached the output file — so it must be printed live —
    /// and until b, which finished early, is done; b's lines are held until a ends.
    @Test func lineBufferWithKeepOrderPrintsTheFirstJobLiveAndHoldsTheRest() async throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let out = directory.appendingPathComponent("out").path
        let bounded = { (condition: String) in "i=0; until \(condition) || [ $i -ge 1000 ]; do sleep 0.01; i=$((i+1)); done" }
        let script = "if [ {} = a ]; then echo a1; \(bounded("grep -q a1 \(out)")); \(bounded("[ -e \(directory.path)/b ]")); echo a2; "
            + "else echo b1; echo b2 >&2; touch \(directory.path)/b; fi"
        let output = try await Self.run(["-j2", "-k", "--lb", "--tag", script, ":::", "a", "b"], stdoutFile: out)
        #expect(output.status == 0)
        #expect(try String(contentsOfFile: out, encoding: .utf8) == "a\ta1\na\ta2\nb\tb1\n")
    }

    /// `workers-run` is the same runner in a small executable that never loads Foundation (whose
    /// start-up alone is longer than a trivial job's): a job reads its parent's memory map.
    /// Run through a `parallel` link (`ln -s …/workers-run ~/bin/parallel`), messages start with
    /// `parallel:` as GNU's do, so scripts that match them keep working.
    @Test func throughAParallelLinkMessagesSayParallel() async throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let lean = WorkersBinaryTests.binary.deletingLastPathComponent().appendingPathComponent("workers-run")
        let link = directory.appendingPathComponent("parallel")
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: lean)
        let output = try await Self.run(["-j1", "--halt", "now,fail=1", "echo {}; exit {}", ":::", "0", "1", "2"], executable: link)
        #expect(output.stdout == "0\n1\n")
        #expect(output.stderr == "parallel: This job failed:\necho 1; exit 1\n")
        #expect(try await Self.run(["--frobnicate"], executable: link).stderr.hasPrefix("parallel: unknown option --frobnicate"))
    }

    @Test func workersRunIsTheSameRunnerWithoutFoundation() async throws {
        let lean = WorkersBinaryTests.binary.deletingLastPathComponent().appendingPathComponent("workers-run")
        let base = "\(NSTemporaryDirectory())workers-run-\(getpid())"
        defer { unlink(base + ".maps") }
        let output = try await Self.run(["-k", "--tag", "cat /proc/$PPID/maps > {}.maps; echo {}", ":::", base], executable: lean)
        #expect(output.status == 0)
        #expect(output.stdout == "\(base)\t\(base)\n")
        let maps = try String(contentsOfFile: base + ".maps", encoding: .utf8)
        #expect(maps.contains("workers-run"))
        #expect(!maps.contains("Foundation"))
    }

    /// `--results DIR`: GNU's documented tree (`foo/1/I/2/III/{seq,stdout,stderr}`), nothing on
    /// stdout, values with slashes and backslashes as one directory level each.
    @Test func resultsTreeAsGNUDocumentsIt() async throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let output = try await Self.run(["--results", "foo", "echo {1} {2}; echo e{2} >&2", ":::", "I", "II", ":::", "III", "IIII"], directory: directory)
        #expect(output.status == 0)
        #expect(output.stdout.isEmpty)
        let root = directory.appendingPathComponent("foo").path
        let files = try FileManager.default.subpathsOfDirectory(atPath: root).filter { ["seq", "stdout", "stderr"].contains(($0 as NSString).lastPathComponent) }
        #expect(files.sorted() == [
            "1/I/2/III/seq", "1/I/2/III/stderr", "1/I/2/III/stdout", "1/I/2/IIII/seq", "1/I/2/IIII/stderr", "1/I/2/IIII/stdout",
            "1/II/2/III/seq", "1/II/2/III/stderr", "1/II/2/III/stdout", "1/II/2/IIII/seq", "1/II/2/IIII/stderr", "1/II/2/IIII/stdout",
        ])
        #expect(try String(contentsOfFile: root + "/1/II/2/III/stdout", encoding: .utf8) == "II III\n")
        #expect(try String(contentsOfFile: root + "/1/II/2/III/stderr", encoding: .utf8) == "eIII\n")
        #expect(try String(contentsOfFile: root + "/1/II/2/IIII/seq", encoding: .utf8) == "4")
        let hostile = try await Self.run(["--results", "h", "printf '%s\\n'", ":::", "c/d", "a\\b", "$(touch pwned)"], directory: directory)
        #expect(hostile.status == 0)
        #expect(try String(contentsOfFile: directory.path + "/h/1/c\\_d/stdout", encoding: .utf8) == "c/d\n")
        #expect(try String(contentsOfFile: directory.path + "/h/1/a\\\\b/stdout", encoding: .utf8) == "a\\b\n")
        #expect(try String(contentsOfFile: directory.path + "/h/1/$(touch pwned)/stdout", encoding: .utf8) == "$(touch pwned)\n")
        #expect(!FileManager.default.fileExists(atPath: directory.path + "/pwned"))
    }

    @Test func resultsTemplatesNameFilesOrDirectories() async throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let files = try await Self.run(["--results", "my_{}", "echo {}; echo oops >&2", ":::", "foo", "bar"], directory: directory)
        #expect(files.status == 0)
        #expect(try String(contentsOfFile: directory.path + "/my_foo", encoding: .utf8) == "foo\n")
        #expect(try String(contentsOfFile: directory.path + "/my_foo.err", encoding: .utf8) == "oops\n")
        #expect(try String(contentsOfFile: directory.path + "/my_bar.seq", encoding: .utf8) == "2")
        let directories = try await Self.run(["--results", "d/my_{}/", "echo", ":::", "foo"], directory: directory)
        #expect(directories.status == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path + "/d/my_foo").sorted() == ["seq", "stderr", "stdout"])
    }

    /// `--results -.csv` / `-.tsv` / `-.json`: one table on stdout, GNU's columns and quoting
    /// (the start time and run time vary, so they are checked by shape).
    @Test func resultsTablesOnStdout() async throws {
        let csv = try await Self.run(["-k", "--results", "-.csv", "echo {1}; echo e{2} >&2; exit {2}", ":::", "a b", "c", ":::", "0"])
        #expect(csv.status == 0)
        let lines = csv.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.first == "Seq,Host,Starttime,JobRuntime,Send,Receive,Exitval,Signal,Command,V1,V2,Stdout,Stderr")
        let row = try #require(lines.dropFirst().first).split(separator: ",", omittingEmptySubsequences: false)
        #expect(row.count >= 10)
        #expect(row[0] == "1" && row[1] == ":" && row[4] == "0" && row[5] == "4" && row[6] == "0" && row[7] == "0")
        #expect(Double(row[2]) != nil && row[3].contains("."))
        #expect(csv.stdout.contains(",\"echo 'a b'; echo e0 >&2; exit 0\",\"a b\",0,\"a b\n\",\"e0\n\"\n"))
        let tsv = try await Self.run(["--results", "-.tsv", "echo", ":::", "x,y"])
        #expect(tsv.stdout.hasPrefix("Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\tV1\tStdout\tStderr\n"))
        #expect(tsv.stdout.hasSuffix("\t\"echo 'x,y'\"\tx,y\t\"x,y\n\"\t\n"))
        let json = try await Self.run(["--results", "-.json", "echo", ":::", "x"])
        #expect(json.stdout.hasPrefix("{ \"Seq\": 1, \"Host\": \":\", \"Starttime\": "))
        #expect(json.stdout.hasSuffix("\"Send\": 0, \"Receive\": 2, \"Exitval\": 0, \"Signal\": 0, \"Command\": \"echo x\", \"V\": [ \"x\" ], \"Stdout\": \"x\\u000a\", \"Stderr\": \"\" }\n"))
    }

    /// `--resume --results DIR` skips the jobs whose stdout is already saved, as GNU's does.
    @Test func resumeSkipsJobsWithResults() async throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let ran = directory.appendingPathComponent("ran").path
        let first = try await Self.run(["--results", "r", "echo {} >> \(ran); echo {}", ":::", "a", "b"], directory: directory)
        #expect(first.status == 0)
        let second = try await Self.run(["--resume", "--results", "r", "echo {} >> \(ran); echo {}", ":::", "a", "b", "c"], directory: directory)
        #expect(second.status == 0)
        #expect(try String(contentsOfFile: ran, encoding: .utf8).split(separator: "\n").sorted() == ["a", "b", "c"])
        #expect(try String(contentsOfFile: directory.path + "/r/1/c/stdout", encoding: .utf8) == "c\n")
    }

    @Test func barCountsToTheTotal() async throws {
        let output = try await Self.run(["--bar", "-j2", "true", ":::", "1", "2", "3", "4"])
        #expect(output.status == 0)
        #expect(output.stderr.contains("100% 4/4 jobs"))
        #expect(output.stderr.contains("25% 1/4 jobs"))
    }

    @Test func memfreeHoldsBackStartsWhileMemoryIsShort() async throws {
        // No machine has a petabyte free: no job starts, not even the first (GNU's par_memfree),
        // until the outer run's --timeout ends the inner one.
        let inner = "'\(WorkersBinaryTests.binary.path)' run --memfree 1000000G echo ran ::: a"
        let output = try await Self.run(["--timeout", "1", inner, ":::", "x"])
        #expect(output.status == 1)
        #expect(!output.stdout.contains("ran"))
        #expect(output.stderr.contains("This job was killed because it timed out"))
    }

    @Test func argFilesDelimitersAndLink() async throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let letters = directory.appendingPathComponent("letters").path
        let numbers = directory.appendingPathComponent("numbers").path
        try "a\nb\nc\n".write(toFile: letters, atomically: true, encoding: .utf8)
        try "1\n2\n".write(toFile: numbers, atomically: true, encoding: .utf8)
        // :::: files multiply as ::: values do; -a is the same; --link wraps the shorter source.
        #expect(try await Self.run(["-k", "echo {1}{2}", "::::", letters, numbers]).stdout == "a1\na2\nb1\nb2\nc1\nc2\n")
        #expect(try await Self.run(["-k", "-a", letters, "echo"]).stdout == "a\nb\nc\n")
        #expect(try await Self.run(["-k", "--link", "echo {1}{2}", "::::", letters, numbers]).stdout == "a1\nb2\nc1\n")
        #expect(try await Self.run(["-k", "echo {1}{2}", "::::", letters, "::::+", numbers]).stdout == "a1\nb2\n")
        // -d splits stdin on another byte.
        #expect(try await Self.run(["-k", "-d", ",", "echo"], stdin: "x,y,z").stdout == "x\ny\nz\n")
    }

    @Test func tagstringDashIAndDashQ() async throws {
        #expect(try await Self.run(["-k", "--tagstring", "<{#}>", "echo {}", ":::", "p", "q"]).stdout == "<1>\tp\n<2>\tq\n")
        #expect(try await Self.run(["-k", "-I", "@@", "echo @@-@@", ":::", "x"]).stdout == "x-x\n")
        // -q: the template's ; is data, not a command separator.
        #expect(try await Self.run(["-q", "echo", "a;b", ":::", "c"]).stdout == "a;b c\n")
    }

    @Test func jobCountFormsGiveThatManySlots() async throws {
        // Slots in use never exceed the job count: with -j1 every job has slot 1.
        #expect(try await Self.run(["-j1", "-k", "echo {%}", ":::", "a", "b", "c"]).stdout == "1\n1\n1\n")
        let unlimited = try await Self.run(["-j0", "-k", "sleep 1; echo {%}", ":::", "a", "b", "c", "d"])
        #expect(Set(unlimited.stdout.split(separator: "\n")) == ["1", "2", "3", "4"])
        #expect(try await Self.run(["-j", "+0", "true", ":::", "a"]).status == 0)
        #expect(try await Self.run(["-j", "50%", "true", ":::", "a"]).status == 0)
    }

    @Test func haltSoonLetsRunningJobsFinishAndStartsNoMore() async throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        // Job 1 fails at once; job 2 (already running) finishes; jobs 3–6 never start.
        let output = try await Self.run(["-j2", "--halt", "soon,fail=1", "if [ {} = 1 ]; then exit 4; fi; sleep 0.3; touch done-{}", ":::", "1", "2", "3", "4", "5", "6"], directory: directory)
        #expect(output.status == 4)
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        #expect(files == ["done-2"])
    }

    /// `--halt now` stops the other running jobs with the terminate sequence (TERM, … KILL), so
    /// one that ignores TERM cannot hold the run open.
    @Test func haltNowStopsAJobThatIgnoresTerm() async throws {
        let start = Date()
        let output = try await Self.run(["-j2", "--halt", "now,fail=1", "if [ {} = 1 ]; then sleep 0.2; exit 3; fi; trap '' TERM; sleep 30", ":::", "1", "2"])
        #expect(output.status == 3)
        #expect(Date().timeIntervalSince(start) < 20)
    }

    /// A shell runs an executable file without `#!` as a shell script; the exec fast path for
    /// commands of plain words must not turn that into "Exec format error".
    @Test func aScriptWithoutShebangRunsAsTheShellWould() async throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let script = directory.appendingPathComponent("plain-script").path
        try writeExecutable("echo plain \"$1\"\n", to: script)
        let output = try await Self.run(["-k", script, ":::", "a", "b"])
        #expect(output.status == 0, "stderr: \(output.stderr)")
        #expect(output.stdout == "plain a\nplain b\n")
        // Without a shell there is nobody to run it: the exec fails, and that job with it (127).
        let direct = try await Self.run(["--no-shell", script, ":::", "a"])
        // (The message names ENOEXEC; under ThreadSanitizer, whose vfork is a fork, the child
        // exits 127 instead, with no message.)
        #expect(direct.status == 1)
    }

    /// `-v` prints each command with its output (tagged with it), `-t` on stderr as it starts:
    /// GNU's output for the same lines, recorded from parallel 20221122.
    @Test func verboseAndTraceShowTheCommands() async throws {
        let verbose = try await Self.run(["-k", "-v", "echo {}; echo e{} >&2", ":::", "a", "b"])
        #expect(verbose.stdout == "echo a; echo ea >&2\na\necho b; echo eb >&2\nb\n")
        #expect(verbose.stderr == "ea\neb\n")
        let tagged = try await Self.run(["-k", "-v", "--tag", "echo", ":::", "a"])
        #expect(tagged.stdout == "a\techo a\na\ta\n")
        let lines = try await Self.run(["-k", "-v", "--lb", "echo", ":::", "a"])
        #expect(lines.stdout == "echo a\na\n")
        let traced = try await Self.run(["-k", "-t", "echo", ":::", "a", "b"])
        #expect(traced.stdout == "a\nb\n")
        #expect(traced.stderr == "echo a\necho b\n")
    }

    /// `--shellquote`, `-r`, `-E`, `--trim`, `--arg-sep`: GNU 20221122's output for each.
    @Test func inputShapingOptionsAsGNU() async throws {
        let quoted = try await Self.run(["--shellquote", ":::", "a b", "it's", "plain"])
        #expect(quoted.stdout == "'a b'\n'it'\"'\"'s'\nplain\n")
        let blankAndEnd = try await Self.run(["-k", "-r", "-E", "STOP", "echo", "x"], stdin: "a\n\n  \nb\nSTOP\nc\n")
        #expect(blankAndEnd.stdout == "x a\nx b\n")
        let perSource = try await Self.run(["-k", "-r", "echo", "{1}-{2}", ":::", "a", "", ":::", "", "c"])
        #expect(perSource.stdout == "a-c\n")
        let trimmedBoth = try await Self.run(["-k", "--trim", "lr", "--colsep", ",", "echo", "[{1}][{2}]", ":::", " a , b "])
        #expect(trimmedBoth.stdout == "[a][b]\n")
        let untrimmed = try await Self.run(["-k", "--trim", "n", "--colsep", ",", "echo", "[{1}][{2}]", ":::", " a , b "])
        #expect(untrimmed.stdout == "[ a ][ b ]\n")
        let left = try await Self.run(["-k", "--trim", "l", "echo", "[{}]", ":::", " a "])
        #expect(left.stdout == "[a ]\n")
        let lines = try await Self.run(["-k", "-L1", "--dry-run", "echo"], stdin: "a \nb\nc d\n")
        #expect(lines.stdout == "echo 'a b'\necho 'c d'\n")
        let pairs = try await Self.run(["-k", "-L", "2", "--dry-run", "echo", "{1}-{2}"], stdin: "a\nb\nc\n")
        #expect(pairs.stdout == "echo a-b\necho c-\n")
        let separators = try await Self.run(["-k", "--arg-sep", ",,", "echo", ",,", "a", ",,+", "b", "c"])
        #expect(separators.stdout == "a b\n")
    }

    /// `--header`: names from the first line (split on tabs, or `--colsep`) or from each source's
    /// first value, as `{name}` with modifiers, and as `--results` levels; with `--pipe`, the
    /// header lines start every block. Outputs recorded from GNU parallel 20221122.
    @Test func headerNamesColumnsAndStartsBlocks() async throws {
        let tabs = try await Self.run(["-k", "--header", ":", "echo", "{x}-{y}"], stdin: "x\ty\n1\t2\n3\t4\n")
        #expect(tabs.stdout == "1-2\n3-4\n")
        let commas = try await Self.run(["-k", "--header", ":", "--colsep", ",", "echo", "{x}-{y}", "{1}"], stdin: "x,y\n1,2\n")
        #expect(commas.stdout == "1-2 1\n")
        let sources = try await Self.run(["-k", "--header", ":", "echo", "{a}{b}", ":::", "a", "1", "2", ":::", "b", "3"])
        #expect(sources.stdout == "13\n23\n")
        let modifiers = try await Self.run(["-k", "--header", ":", "echo", "{f.}", "{f/}", ":::", "f", "dir/x.txt"])
        #expect(modifiers.stdout == "dir/x x.txt\n")
        let tagged = try await Self.run(["-k", "--header", ":", "--tag", "echo", "{a}", ":::", "a", "1"])
        #expect(tagged.stdout == "1\t1\n")
        let blocks = try await Self.run(["-k", "--pipe", "-N1", "--header", ":", "cat; echo --"], stdin: "h\n1\n2\n3\n")
        #expect(blocks.stdout == "h\n1\n--\nh\n2\n--\nh\n3\n--\n")
        let twoLines = try await Self.run(["-k", "--pipe", "-N1", "--header", "2", "cat; echo --"], stdin: "h1\nh2\n1\n2\n")
        #expect(twoLines.stdout == "h1\nh2\n1\n--\nh1\nh2\n2\n--\n")
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let results = try await Self.run(["--header", ":", "--results", "hr", "echo", "{a}", ":::", "a", "1", "2"], directory: directory)
        #expect(results.status == 0)
        #expect(try String(contentsOfFile: directory.path + "/hr/a/2/stdout", encoding: .utf8) == "2\n")
    }

    /// `--recstart` (FASTA's `>`), alone or with `--recend`, with `--pipe` and `--pipe-part`; escapes
    /// inside `--recend`. Outputs recorded from GNU parallel 20221122 on the same input.
    @Test func recordStartCutsBeforeEachRecord() async throws {
        let fasta = ">a\nxxxx\n>b\nyy\n>c\nz\n>d\nqqqqqqqqqq\n"
        let each = try await Self.run(["-k", "--pipe", "--recstart", ">", "-N1", "cat; echo --"], stdin: fasta)
        #expect(each.stdout == ">a\nxxxx\n--\n>b\nyy\n--\n>c\nz\n--\n>d\nqqqqqqqqqq\n--\n")
        let sized = try await Self.run(["-k", "--pipe", "--recstart", ">", "--block", "8", "wc", "-c"], stdin: fasta)
        #expect(sized.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) } == ["8", "11", "14"])
        let both = try await Self.run(["-k", "--pipe", "--recstart", ">", "--recend", "\\n", "-N2", "wc", "-c"], stdin: fasta)
        #expect(both.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) } == ["14", "19"])
        let escaped = try await Self.run(["-k", "--pipe", "--recend", "y\\n", "--block", "3", "wc", "-c"], stdin: fasta)
        #expect(escaped.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) } == ["14", "19"])
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("in.fa").path
        try fasta.write(toFile: file, atomically: true, encoding: .utf8)
        let parts = try await Self.run(["-k", "--pipe-part", "-a", file, "--recstart", ">", "--block", "8", "wc", "-c"])
        #expect(parts.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) } == ["8", "11", "14"])
    }

    /// `--cat`: each block in a file whose name is `{}` (GNU 20221122: `seq 3 | parallel --pipe
    /// --cat 'wc -l {}'` prints `3 /tmp/par…`), gone when the job is done; stdin is /dev/null.
    @Test func catGivesEachBlockAsAFile() async throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let output = try await Self.run(["-k", "--pipe", "-N2", "--cat", "--tmpdir", directory.path, "wc -l < {}; echo {}; cat"], stdin: "1\n2\n3\n")
        #expect(output.status == 0)
        let lines = output.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 4)
        #expect(lines[0] == "2" && lines[2] == "1")
        #expect(lines[1].hasPrefix(directory.path + "/par") && lines[3].hasPrefix(directory.path + "/par"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)
        let refused = try await Self.run(["--cat", "wc", ":::", "a"])
        #expect(refused.status == 255)
    }

    /// `--round-robin`: -j jobs run for the whole input, the blocks shared among them (GNU
    /// 20221122: `seq 100000 | parallel --pipe --round-robin -j2 --block 10k wc -l` prints two
    /// counts that add up to 100000); input of one block starts one job.
    @Test func roundRobinSharesTheBlocksAmongLongRunningJobs() async throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let log = directory.appendingPathComponent("jobs.log").path
        let input = (1...100_000).map(String.init).joined(separator: "\n") + "\n"
        let shared = try await Self.run(["--pipe", "--round-robin", "-j2", "--block", "10k", "--joblog", log, "wc", "-l"], stdin: input)
        #expect(shared.status == 0)
        let counts = shared.stdout.split(separator: "\n").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        #expect(counts.count == 2)
        #expect(counts.reduce(0, +) == 100_000)
        let sent = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").dropFirst().compactMap { Int($0.split(separator: "\t")[4]) }
        #expect(sent.reduce(0, +) == input.utf8.count)
        // Enough blocks start all -j jobs (GNU: 500, 250, 250 for these).
        let three = try await Self.run(["--pipe", "--round-robin", "-j3", "--block", "1k", "wc", "-l"], stdin: (1...1000).map(String.init).joined(separator: "\n") + "\n")
        let threeCounts = three.stdout.split(separator: "\n").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        #expect(threeCounts.count == 3 && threeCounts.reduce(0, +) == 1000)
        let one = try await Self.run(["--pipe", "--round-robin", "-j3", "wc", "-l"], stdin: "1\n2\n3\n")
        #expect(one.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "3")
    }

    /// `--tty`: the jobs read the terminal (a pty from script(1) here), one at a time, output
    /// passed through — GNU 20221122 prints `/dev/tty` and slot 1 for each.
    @Test func ttyGivesJobsTheTerminalOneAtATime() async throws {
        let command = "\(WorkersBinaryTests.binary.path) run --tty 'tty; echo slot {%}' ::: 1 2"
        let output = try await Self.run(["-qec", command, "/dev/null"], executable: URL(fileURLWithPath: "/usr/bin/script")).stdout
        let lines = output.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
        #expect(lines == ["/dev/tty", "slot 1", "/dev/tty", "slot 1"], "output: \(output)")
        // Without a terminal the jobs still run, as GNU's do.
        let detached = try await Self.run(["--tty", "echo", ":::", "x"])
        #expect(detached.stdout == "x\n")
    }

    /// `--semaphore` (GNU's `sem`): a mutex by default, `-j N` lets N run at once, `--wait` waits
    /// for them all, `--fg` returns the command's status, `--st -SECS` gives up. (Background
    /// commands let go of our stdout first: the harness reads it to its end.)
    @Test func semaphoreLimitsCommandsAcrossInvocations() async throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let id = "test-\(getpid())-\(UUID().uuidString)"
        let path = directory.path
        let detach = "exec >/dev/null 2>&1; "
        // A mutex: B starts only after A has ended, so it always sees A's end mark.
        let started = try await Self.run(["--semaphore", "--id", id, detach + "sleep 0.3; touch \(path)/a-end"])
        #expect(started.status == 0)
        _ = try await Self.run(["--semaphore", "--id", id, detach + "[ -e \(path)/a-end ] && touch \(path)/b-saw-a-end"])
        let waited = try await Self.run(["--semaphore", "--id", id, "--wait"])
        #expect(waited.status == 0)
        #expect(FileManager.default.fileExists(atPath: path + "/b-saw-a-end"))
        // -j2: both run at once, each seeing the other start (bounded waits, no timing).
        let wait = { (file: String) in "i=0; until [ -e \(path)/\(file) ] || [ $i -ge 500 ]; do sleep 0.01; i=$((i+1)); done" }
        _ = try await Self.run(["--semaphore", "--id", id, "-j2", detach + "touch \(path)/c; \(wait("d")); [ -e \(path)/d ] && touch \(path)/c-saw-d"])
        _ = try await Self.run(["--semaphore", "--id", id, "-j2", detach + "touch \(path)/d; \(wait("c")); [ -e \(path)/c ] && touch \(path)/d-saw-c"])
        _ = try await Self.run(["--semaphore", "--id", id, "--wait"])
        #expect(FileManager.default.fileExists(atPath: path + "/c-saw-d"))
        #expect(FileManager.default.fileExists(atPath: path + "/d-saw-c"))
        // --fg: the command's own status; --st -0.2 while the mutex is held: give up with 1.
        let foreground = try await Self.run(["--semaphore", "--id", id, "--fg", "echo fg; exit 3"])
        #expect(foreground.status == 3 && foreground.stdout == "fg\n")
        _ = try await Self.run(["--semaphore", "--id", id, detach + wait("release")])
        let gaveUp = try await Self.run(["--semaphore", "--id", id, "--st", "-0.2", "--fg", "true"])
        #expect(gaveUp.status == 1)
        _ = FileManager.default.createFile(atPath: path + "/release", contents: nil)
        _ = try await Self.run(["--semaphore", "--id", id, "--wait"])
    }

    /// `--files`: each job's stdout in a file of its own (`par…​.par` in the temporary directory),
    /// whose name is printed, tagged with `--tag`; stderr is printed as usual.
    @Test func filesPrintsNamesOfOutputFiles() async throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let output = try await Self.run(["-k", "--tag", "--files", "--tmpdir", directory.path, "echo out{}; echo err{} >&2", ":::", "a", "b"])
        #expect(output.status == 0)
        let lines = output.stdout.split(separator: "\n").map { $0.split(separator: "\t").map(String.init) }
        #expect(lines.map { $0[0] } == ["a", "b"])
        #expect(lines.allSatisfy { $0[1].hasPrefix(directory.path + "/par") && $0[1].hasSuffix(".par") })
        #expect(try lines.map { try String(contentsOfFile: $0[1], encoding: .utf8) } == ["outa\n", "outb\n"])
        #expect(output.stderr == "a\terra\nb\terrb\n")
    }

    /// `--csv`: quoted fields with separators, doubled quotes and newlines; `{}` joins the fields;
    /// no trim. Outputs recorded from parallel 20221122 (with Text::CSV installed).
    @Test func csvRowsSplitAsGNUs() async throws {
        let quoted = try await Self.run(["--csv", "-k", "echo", "[{1}][{2}]", ":::", "a,\"b,c\""])
        #expect(quoted.stdout == "[a][b,c]\n")
        let rows = try await Self.run(["--csv", "-k", "echo", "[{2}]"], stdin: "x,\"multi\nline\",z\nq,\"say \"\"hi\"\"\",r\n")
        #expect(rows.stdout == "[multi\nline]\n[say \"hi\"]\n")
        let semicolons = try await Self.run(["--csv", "--colsep", ";", "-k", "echo", "[{2}]"], stdin: "x;\"y;z\"\n")
        #expect(semicolons.stdout == "[y;z]\n")
        let all = try await Self.run(["--csv", "-k", "echo", "[{}]"], stdin: "a,b\n")
        #expect(all.stdout == "[a b]\n")
        let spaces = try await Self.run(["--csv", "-k", "echo", "[{1}][{2}]"], stdin: " a , b \n")
        #expect(spaces.stdout == "[ a ][ b ]\n")
        // The header row is CSV too (GNU 20221122 keeps the quotes in a quoted name: `{b}` stays).
        let named = try await Self.run(["--csv", "--header", ":", "-k", "echo", "{b}-{a}"], stdin: "a,\"b\"\n1,2\n")
        #expect(named.stdout == "2-1\n")
    }

    /// `--workdir` (made if missing, replacement strings allowed), `--nice`, `--shuf`.
    @Test func whereHowNiceAndInWhatOrderJobsRun() async throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let made = directory.appendingPathComponent("made").path
        let workdir = try await Self.run(["-k", "--wd", made + "/{}", "pwd", ":::", "x"])
        #expect(workdir.status == 0)
        #expect(workdir.stdout == made + "/x\n")
        errno = 0
        let base = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
        let nice = try await Self.run(["--nice", "5", "cut -d' ' -f19 /proc/self/stat", ":::", "1"])
        #expect(Int32(nice.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) == min(19, base + 5))
        let inputs = (1...40).map(String.init)
        let shuffled = try await Self.run(["-j1", "--shuf", "echo"] + [":::"] + inputs)
        let printed = shuffled.stdout.split(separator: "\n").map(String.init)
        #expect(printed.sorted() == inputs.sorted())
        #expect(printed != inputs)  // 40 inputs left in order by a shuffle: a chance of 1 in 40!
    }

    /// `--term-seq`: the job is stopped with the signals given (here INT, which it traps).
    @Test func terminateSequenceIsTheOneAskedFor() async throws {
        // The time-out leaves the shell ample time to set its trap even on a loaded machine.
        let output = try await Self.run(["--term-seq", "INT,200,KILL,25", "--timeout", "2", "trap 'echo got INT; exit 9' INT; sleep 30 & wait; : {}", ":::", "x"])
        #expect(output.status == 1)
        #expect(output.stdout == "got INT\n")
    }

    /// `--retry-failed` runs again, with the joblog's commands, the jobs it records as failed.
    @Test func retryFailedRunsTheJoblogsFailures() async throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let log = directory.appendingPathComponent("jobs.log").path
        let script = "if [ -e ok ]; then echo fixed {}; else exit {}; fi"
        let first = try await Self.run(["-k", "--joblog", log, script, ":::", "0", "1", "2"], directory: directory)
        #expect(first.status == 2)
        _ = FileManager.default.createFile(atPath: directory.appendingPathComponent("ok").path, contents: nil)
        let again = try await Self.run(["-k", "--joblog", log, "--retry-failed"], directory: directory)
        #expect(again.status == 0)
        #expect(again.stdout == "fixed 1\nfixed 2\n")
        // Rows are written as jobs end (GNU's too): the first run's three in any order, then the two again.
        let sequences = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").dropFirst().map { String($0.split(separator: "\t")[0]) }
        #expect(sequences.count == 5)
        #expect(sequences.prefix(3).sorted() == ["1", "2", "3"])
        #expect(sequences.suffix(2).sorted() == ["2", "3"])
    }

    /// `--json`: one JSON object per finished job on stderr, keys sorted, values escaped (a quote
    /// and a tab in an input survive a JSON parser).
    @Test func jsonEventsParseAndCarryTheJob() async throws {
        let output = try await Self.run(["-j1", "--json", "echo {}; exit {#}", ":::", "a\"b\tc", "d"])
        #expect(output.status == 2)
        let events = try output.stderr.split(separator: "\n").filter { $0.hasPrefix("{") }.map { line in
            try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        }
        #expect(events.count == 2)
        #expect(events.first?["args"] as? [String] == ["a\"b\tc"])
        #expect(events.first?["seq"] as? Int == 1 && events.first?["exit"] as? Int == 1 && events.first?["slot"] as? Int == 1)
        #expect(events.first?["command"] as? String == "echo 'a\"b\tc'; exit 1")
        #expect(events.last?["timed_out"] as? Bool == false && events.last?["runtime_s"] is Double)
        #expect(output.stderr.split(separator: "\n").first?.hasPrefix("{\"args\":") == true)
    }

    /// GNU: "-N0 runs once per argument with no arguments" (no `{}` appended either).
    @Test func dashN0RunsOncePerInputWithoutIt() async throws {
        let output = try await Self.run(["-k", "-N0", "echo", "x", ":::", "a", "b", "c"])
        #expect(output.status == 0)
        #expect(output.stdout == "x\nx\nx\n")
    }

    @Test func haltOnSuccessAndDoneCounts() async throws {
        // The first success stops the run: the job after it never starts.
        let success = try await Self.run(["-j1", "-k", "--halt", "now,success=1", "echo {}; exit {}", ":::", "3", "0", "5"])
        #expect(success.stdout == "3\n0\n")
        #expect(success.status == 0)
        let done = try await Self.run(["-j1", "-k", "--halt", "soon,done=2", "echo {}", ":::", "a", "b", "c"])
        #expect(done.stdout == "a\nb\n")
        // N% is of all the jobs (GNU reads the input first): 34 % of 6 is 2.04, so the third
        // failure stops the run, with 3 of 6 failed: ceil(50 %).
        let percent = try await Self.run(["-j1", "-k", "--halt", "now,fail=34%", "echo {}; exit {}", ":::", "0", "1", "0", "1", "1", "1"])
        #expect(percent.stdout == "0\n1\n0\n1\n1\n")
        #expect(percent.status == 50)
    }

    @Test func resumeFailedRunsOnlyTheFailedJobsAgain() async throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let log = directory.appendingPathComponent("jobs.log").path
        let marks = directory.appendingPathComponent("marks").path
        let script = "echo {} >> \(marks); [ -e \(directory.path)/fixed ] || [ {} != 2 ]"
        let first = try await Self.run(["-j1", "--joblog", log, script, ":::", "1", "2", "3"])
        #expect(first.status == 1)
        _ = FileManager.default.createFile(atPath: directory.appendingPathComponent("fixed").path, contents: nil)
        let second = try await Self.run(["-j1", "--joblog", log, "--resume-failed", script, ":::", "1", "2", "3"])
        #expect(second.status == 0)
        #expect(try String(contentsOfFile: marks, encoding: .utf8) == "1\n2\n3\n2\n")
    }

    @Test func delaySpacesTheStarts() async throws {
        let start = Date()
        let output = try await Self.run(["-j3", "--delay", "0.2", "true", ":::", "a", "b", "c"])
        #expect(output.status == 0)
        #expect(Date().timeIntervalSince(start) >= 0.4)  // three starts, two gaps of at least 0.2 s
    }

    @Test func dashXAndDashMPutManyInputsOnOneLine() async throws {
        // GNU: -X repeats the words around {} per input; -m puts the inputs side by side; with -j1
        // (or --xargs) all go to one line.
        #expect(try await Self.run(["-j1", "-X", "--dry-run", "echo", "pre-{}-post", ":::", "a", "b c"]).stdout == "echo pre-a-post pre-'b c'-post\n")
        #expect(try await Self.run(["-j1", "-m", "--dry-run", "echo", "pre-{}-post", ":::", "a", "b c"]).stdout == "echo pre-a 'b c'-post\n")
        #expect(try await Self.run(["--xargs", "echo", ":::", "1", "2", "3"]).stdout == "1 2 3\n")
        // Spread over two slots.
        let spread = try await Self.run(["-j2", "-m", "-k", "echo", ":::", "1", "2", "3", "4"])
        #expect(spread.stdout == "1 2\n3 4\n")
        // -s caps the line: with 16 bytes, `echo 1 2 3 4 5 6` (16 bytes) cannot grow past a few inputs.
        let capped = try await Self.run(["-j1", "-m", "-k", "-s", "16", "echo", ":::"] + (1...9).map(String.init))
        #expect(capped.stdout.split(separator: "\n").count > 1)
        #expect(capped.stdout.split(separator: "\n").joined(separator: " ") == "1 2 3 4 5 6 7 8 9")
    }

    @Test func pipePartCutsASeekableFileOnRecordEnds() async throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("lines").path
        let text = (1...20_000).map { "line \($0)\n" }.joined()
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        let whole = try await Self.run(["--pipe-part", "-a", file, "--block", "10K", "-k", "cat"])
        #expect(whole.status == 0)
        #expect(whole.stdout == text)
        let sizes = try await Self.run(["--pipe-part", "-a", file, "--block", "10K", "-k", "wc", "-c"])
        let counts = sizes.stdout.split(separator: "\n").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        #expect(counts.reduce(0, +) == text.utf8.count)
        #expect(counts.dropLast().allSatisfy { $0 >= 10 * 1024 && $0 < 10 * 1024 + 16 })
        let notAFile = try await Self.run(["--pipe-part", "cat"])
        #expect(notAFile.status == 255)
        #expect(notAFile.stderr.contains("--pipe-part"))
    }

    @Test func dryRunPrintsQuotedCommands() async throws {
        let output = try await Self.run(["--dry-run", "gzip", ":::", "b c.txt", "a.txt"])
        #expect(output.stdout == "gzip 'b c.txt'\ngzip a.txt\n")
    }

    @Test func jobsGetSeqSlotAndDevNullAsStdin() async throws {
        let output = try await Self.run(["-j2", "-k", "echo $PARALLEL_SEQ {#} $PARALLEL_JOBSLOT {%}; cat", ":::", "a", "b", "c"], stdin: "do not read me\n")
        let rows = output.stdout.split(separator: "\n").map { $0.split(separator: " ") }
        #expect(rows.map { $0[0] } == ["1", "2", "3"])
        #expect(rows.allSatisfy { $0[0] == $0[1] && $0[2] == $0[3] && ["1", "2"].contains($0[2]) })
        #expect(!output.stdout.contains("do not read me"))
    }

    @Test func noCommandRunsEachLine() async throws {
        let output = try await Self.run(["-k"], stdin: "echo one\necho two && echo three\n")
        #expect(output.stdout == "one\ntwo\nthree\n")
    }

    @Test func columnsAndGroupsOfArguments() async throws {
        let columns = try await Self.run(["-k", "--colsep", ",", "echo {2}-{1}"], stdin: "a , b\nc,d\n")
        #expect(columns.stdout == "b-a\nd-c\n")
        let pairs = try await Self.run(["-k", "-N2", "echo {1}+{2}", ":::", "1", "2", "3", "4", "5"])
        #expect(pairs.stdout == "1+2\n3+4\n5+\n")
    }

    /// Names that are shell syntax pass through as data, in shell mode and in --no-shell mode.
    @Test(arguments: [false, true])
    func hostileFileNamesAreNeverExecuted(noShell: Bool) async throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let names = ["a b", "it's", "say \"hi\"", "$(touch PWNED1)", "`touch PWNED2`", "x; touch PWNED3", "*", "new\nline", "-n", "a\\b", "&& touch PWNED4"]
        for name in names { _ = FileManager.default.createFile(atPath: directory.appendingPathComponent(name).path, contents: Data(name.utf8)) }
        let input = names.joined(separator: "\0") + "\0"
        let template = noShell ? ["--no-shell", "cp", "--", "{}", "{}.copy"] : ["cp -- {} {}.copy"]
        let output = try await Self.run(["-0"] + template, stdin: input, directory: directory)
        #expect(output.status == 0, "stderr: \(output.stderr)")
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        #expect(!files.contains { $0.hasPrefix("PWNED") }, "executed: \(files)")
        for name in names {
            let copy = directory.appendingPathComponent(name + ".copy").path
            #expect((try? String(contentsOfFile: copy, encoding: .utf8)) == name, "\(name) was not copied")
        }
    }

    /// `kill -9` of `workers run` in a joblog'd run, then `--resume`: no job lost, none that the
    /// joblog records as done runs again.
    @Test func resumeAfterKill9LosesNoJobAndRepeatsNone() async throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let log = directory.appendingPathComponent("jobs.log").path
        let marks = directory.appendingPathComponent("marks").path
        let arguments = ["-j2", "--joblog", log, "echo {} >> \(marks); sleep 0.05", ":::"] + (1...40).map(String.init)

        try await offThePool {
            let process = Process()
            process.executableURL = WorkersBinaryTests.binary
            process.arguments = ["run"] + arguments
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            // Kill it once the joblog shows some finished jobs.
            let deadline = Date().addingTimeInterval(20)
            while Date() < deadline {
                let rows = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").count - 1
                if rows >= 8 { break }
                usleep(2_000)
            }
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        let loggedBefore = Set(try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").dropFirst().compactMap { Int($0.split(separator: "\t")[0]) })
        #expect(loggedBefore.count >= 8 && loggedBefore.count < 40)

        let resumed = try await Self.run(["--resume"] + arguments)
        #expect(resumed.status == 0, "stderr: \(resumed.stderr)")
        let logged = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").dropFirst().compactMap { Int($0.split(separator: "\t")[0]) }
        #expect(Set(logged) == Set(1...40))       // no job lost
        #expect(logged.count == 40)               // none logged twice
        let ran = try String(contentsOfFile: marks, encoding: .utf8).split(separator: "\n").compactMap { Int($0) }
        for job in loggedBefore { #expect(ran.filter { $0 == job }.count == 1, "job \(job) ran again") }
    }

    @Test func sigtermStopsRunningJobsAndExits143() async throws {
        let marker = "31.\(getpid() % 10_000)"  // a sleep time no other process uses
        let status: Int32 = try await offThePool {
            let process = Process()
            process.executableURL = WorkersBinaryTests.binary
            process.arguments = ["run", "-j2", "sleep", ":::", marker, marker, marker]
            process.standardError = FileHandle.nullDevice
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            // Wait until both jobs run, then stop the runner.
            let deadline = Date().addingTimeInterval(20)
            while Date() < deadline, Self.processes(withArgument: marker).count < 2 { usleep(5_000) }
            kill(process.processIdentifier, SIGTERM)
            process.waitUntilExit()
            return process.terminationStatus
        }
        #expect(status == 143)
        // Its jobs went with it.
        #expect(Self.processes(withArgument: marker).isEmpty)
    }

    /// Pids of processes (not zombies) with `argument` among their arguments.
    static func processes(withArgument argument: String) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"), !data.isEmpty else { return false }
            return data.split(separator: 0).contains { String(decoding: $0, as: UTF8.self) == argument }
        }
    }
}

extension Thread {
    /// Runs `body` on a new thread; `value` waits for its result.
    static func detachNewThreadReturning<T: Sendable>(_ body: @escaping @Sendable () -> T) -> ThreadResult<T> {
        let result = ThreadResult<T>()
        Thread.detachNewThread { result.set(body()) }
        return result
    }
}

final class ThreadResult<T: Sendable>: @unchecked Sendable {  // @unchecked: guarded by `condition`.
    private let condition = NSCondition()
    private var stored: T?

    func set(_ value: T) {
        condition.lock()
        stored = value
        condition.broadcast()
        condition.unlock()
    }

    var value: T {
        condition.lock()
        defer { condition.unlock() }
        while stored == nil { condition.wait() }
        return stored!
    }
}
