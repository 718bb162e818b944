import Foundation
import Testing

/// Cases from the side-by-side sweep of GNU parallel's own test suite (`scripts/gnu-sweep.py`)
/// that `workers run` got wrong, each with GNU parallel 20221122's output and status for the same
/// command line (GNU parallel is not needed to run them).
@Suite(.timeLimit(.minutes(3))) struct RunGNUCasesTests {
    func lines(_ count: ClosedRange<Int>) -> String { count.map { "\($0)\n" }.joined() }

    func stdout(_ arguments: [String], stdin: String = "") async throws -> String {
        let output = try await RunCommandTests.run(arguments, stdin: stdin)
        #expect(output.status == 0, "\(arguments): \(output.stderr)")
        return output.stdout
    }

    /// -N and -L repeat the words around `{}` per input as -X does (GNU's context replace);
    /// positional strings still see every input; -l0 is -l1; --tagstring repeats under -X too.
    @Test func contextReplaceUnderDashNAndDashL() async throws {
        let ten = (1...10).map { "a\($0)b" }.joined(separator: " ") + "\n" + (11...19).map { "a\($0)b" }.joined(separator: " ") + "\n"
        #expect(try await stdout(["-k", "-N", "10", "echo", "a{}b"], stdin: lines(1...19)) == ten)
        #expect(try await stdout(["-k", "-L", "10", "echo", "a{}b"], stdin: lines(1...19)) == ten)
        #expect(try await stdout(["-k", "-N2", "echo", "{1}-{2}", "x{}y"], stdin: lines(1...4)) == "1-2 x1y x2y\n3-4 x3y x4y\n")
        #expect(try await stdout(["-k", "-l0", "echo", "l0"], stdin: lines(1...2)) == "l0 1\nl0 2\n")
        #expect(try await stdout(["-j1", "-X", "-v", "--tagstring", "a{}b", "echo", ":::", "3", "4"]) == "a3b a4b\techo 3 4\na3b a4b\t3 4\n")
    }

    /// GNU's line limit: its search's 130,329 bytes, less 3,000, halved; -s above it is a warning.
    @Test func dashXFillsLinesToGNUsLimit() async throws {
        #expect(try await stdout(["--max-line-length-allowed"]) == "130329\n")
        let words = try await stdout(["-Xj1", "echo {} {} {} {} {} {} {} {} {} {} {} {} {} {} | wc -w"], stdin: lines(1...3850))
        #expect(words.split(separator: "\n").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } == [15820, 12726, 12726, 12628])
        let warned = try await RunCommandTests.run(["-s", "100000", "-X", "echo", ":::", "a"])
        #expect(warned.stdout == "a\n")
        #expect(warned.stderr.contains("Warning: Value for option -s should be < 63664."))
    }

    @Test func columnsOfEverySourceAndResultsInHeaderOrder() async throws {
        let directory = try RunCommandTests.scratch()
        let one = directory.appendingPathComponent("one").path, two = directory.appendingPathComponent("two").path
        try "def\njkl\n".write(toFile: one, atomically: true, encoding: .utf8)
        try "abc\tghi\nmno\tpqr\n".write(toFile: two, atomically: true, encoding: .utf8)
        #expect(try await stdout(["--xapply", "-k", "-a", one, "-a", two, "--colsep", "\\t", "echo", "{2}", "{1}"]) == "abc def\nmno jkl\n")
        // --results levels are sorted by their names: a before b whatever the order given.
        let results = directory.appendingPathComponent("res").path
        _ = try await stdout(["-k", "--header", ":", "--results", results, "echo", "{a}", "{b}", ":::", "b", "III", ":::", "a", "I"])
        #expect(FileManager.default.fileExists(atPath: results + "/a/I/b/III/stdout"))
    }

    /// A joblog that exists but is empty (`mktemp`'s) gets the header, so --resume skips what ran.
    @Test func resumeWithAnEmptyJoblogFile() async throws {
        let joblog = try RunCommandTests.scratch().appendingPathComponent("log").path
        #expect(FileManager.default.createFile(atPath: joblog, contents: nil))
        let first = try await RunCommandTests.run(["-k", "--resume", "--joblog", joblog, "echo job{}id; exit {}", ":::", "0", "1", "2"])
        #expect(first.stdout == "job0id\njob1id\njob2id\n" && first.status == 2)
        #expect(try await RunCommandTests.run(["-k", "--resume", "--joblog", joblog, "echo job{}id; exit {}", ":::", "0", "1", "2"]).stdout == "")
        #expect(try await RunCommandTests.run(["-k", "--resume", "--joblog", joblog, "echo job{}id", ":::", "0", "1", "2", "3"]).stdout == "job3id\n")
    }

    /// GNU's messages word for word, without our hint to read --help.
    @Test func gnusOwnErrorMessages() async throws {
        let cases: [([String], String)] = [
            (["--halt", "error", "echo", ":::", "x"], "Error: --halt must have 'never', 'soon', or 'now'.\n"),
            (["--halt", "soon", "echo", ":::", "x"], "Error: --halt soon must be followed by ,success or ,fail.\n"),
            (["--halt", "now,fail", "echo", ":::", "x"], "Error: --halt now,fail must be followed by ,number or ,percent%.\n"),
            (["--trim", "fj", "echo", ":::", "x"], "Error: --trim must be one of: r l rl lr.\n"),
            (["--pipe"], "Error: --pipe/--pipepart must have a command to pipe into (e.g. 'cat').\n"),
            (["--pipe-part", "-a", "/nonexisting", "cat"], "Error: File not found: /nonexisting\n"),
            (["-a", "/nonexisting", "echo"], "Error: Cannot open input file `/nonexisting': No such file or directory.\n"),
        ]
        for (arguments, message) in cases {
            let run = try await RunCommandTests.run(arguments)
            #expect(run.status == 255, "\(arguments)")
            #expect(run.stderr.hasSuffix(": " + message), "\(arguments): \(run.stderr)")
        }
        // GNU's retired options: its whole list, status 255; --tollef unless --gnu.
        let retired = try await RunCommandTests.run(["-H", "1", "echo", ":::", "x"])
        #expect(retired.status == 255 && retired.stderr.split(separator: "\n").count == 10 && retired.stderr.contains("Error: -H has been retired. Use --halt."))
        #expect(try await RunCommandTests.run(["--tollef", "echo", ":::", "x"]).stderr.hasSuffix(": Error: Remove --tollef or use --gnu to override --tollef.\n"))
        #expect(try await RunCommandTests.run(["--tollef", "--gnu", "echo", ":::", "x"]).stdout == "x\n")
        // --halt now: the jobs it kills are not named as failures.
        let halted = try await RunCommandTests.run(["-j4", "--halt", "2", ":::", "sleep 1", "sleep 30", "false"])
        #expect(halted.status == 1)
        #expect(halted.stderr.components(separatedBy: "This job failed:").count == 2, "\(halted.stderr)")
    }

    /// --pipe cuts at the last record end within --block bytes (growing only a block that has
    /// none); --pipe-part makes ten parts a job slot unless --block says otherwise, N a slot for
    /// --block -N, one for --round-robin, and hands each job a pipe.
    @Test func blocksAreCutAsGNUCutsThem() async throws {
        let perLine = "tr '\\n' ' '; echo"
        #expect(try await stdout(["-k", "--block", "3", "--pipe", perLine], stdin: lines(1...4)) == "1 \n2 \n3 \n4 \n")
        #expect(try await stdout(["-k", "--block", "5", "--pipe", perLine], stdin: lines(1...5)) == "1 2 \n3 4 \n5 \n")
        #expect(try await stdout(["-k", "--block", "6", "--pipe", perLine], stdin: lines(1...6)) == "1 2 3 \n4 5 6 \n")
        let file = try RunCommandTests.scratch().appendingPathComponent("seq").path
        try lines(1...1000).write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try await stdout(["-j2", "-k", "--pipe-part", "echo", "{#}", "::::", file]) == lines(1...20))
        #expect(try await stdout(["-j2", "-k", "--block", "-2", "--pipe-part", "echo", "{#}", "::::", file]) == lines(1...4))
        let robin = try await stdout(["-j2", "--pipe-part", "-a", file, "--block", "14", "--round-robin", "wc", "-l"])
        #expect(robin.split(separator: "\n").compactMap { Int($0) }.sorted() == [486, 514])
        let parts = try await stdout(["-k", "--pipe-part", "-a", file, "--block", "1k", "test -p /dev/stdin && cat"])
        #expect(parts == lines(1...1000))
    }

    /// A job that ends while the input's writer is slow is printed at once, not when the next
    /// line comes (GNU's par__print_in_blocks; `tail -f log | workers run …`). The writer waits,
    /// bounded, for the first job's output before it writes again.
    @Test func outputIsNotHeldBackBySlowInput() async throws {
        let out = try RunCommandTests.scratch().appendingPathComponent("out").path
        let script = #"(echo 1; for i in $(seq 400); do grep -q "1 done" "$1" && break; sleep 0.025; done; echo "waited $i") | "$2" run -j2 "echo {} done" > "$1"; cat "$1""#
        let run = try await RunCommandTests.run(["-c", script, "_", out, WorkersBinaryTests.binary.path], executable: URL(fileURLWithPath: "/bin/bash"))
        let waited = run.stdout.split(separator: "\n").first { $0.hasPrefix("waited ") }.flatMap { Int($0.dropFirst(7).prefix { $0.isNumber }) }
        #expect(run.stdout.hasPrefix("1 done\n"))
        #expect((waited ?? 400) < 400, "\(run.stdout)")
    }

    /// -j FILE: the slots are what the file holds (read again when it changes).
    @Test func jobsFromAFile() async throws {
        let file = try RunCommandTests.scratch().appendingPathComponent("jobs").path
        try "1\n".write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try await stdout(["-j", file, "-k", "echo {%}", ":::", "a", "b", "c"]) == "1\n1\n1\n")
        let bad = try await RunCommandTests.run(["-j", "/no/such/file", "echo", ":::", "a"])
        #expect(bad.status == 255 && bad.stderr.contains("-j: '/no/such/file' is not N, N%, +N, -N, 0 or a file holding one"))
    }

    /// --filter: a Perl expression per job, its replacement strings filled in unquoted; a job it
    /// rejects does not run, is not retried, and counts as failed (GNU 20221122: exit 3 below).
    @Test func filterRunsOnlyTheJobsItAccepts() async throws {
        let filtered = try await RunCommandTests.run(["-k", "--filter", "\"{1}\" ne \"Not\"", "echo", "{1} {2}", ":::", "Not", "Is", ":::", "good", "OK"])
        #expect(filtered.stdout == "Is good\nIs OK\n")
        #expect(filtered.status == 2)
        // --dry-run prints every job: GNU 20221122 does not filter there.
        #expect(try await stdout(["--dry-run", "-k", "--filter", "\"{1}\" ne \"Not\"", "echo", "{1}", ":::", "Not", "Is"]) == "echo Not\necho Is\n")
        let retried = try await RunCommandTests.run(["-k", "--retries", "3", "--filter", "{} % 2", "echo ran {}; false", ":::", "1", "2", "3"])
        #expect(retried.stdout == "ran 1\nran 3\n")
        #expect(retried.status == 3)
    }

    /// --pipe -L N (and -l N): records of N lines, blocks cut between them, the whole records
    /// first at the end of the input.
    @Test func pipeRecordsOfNLines() async throws {
        #expect(try await stdout(["-k", "--pipe", "-L", "4", "cat; echo --"], stdin: lines(1...10)) == lines(1...8) + "--\n9\n10\n--\n")
        let counts = try await stdout(["-k", "--pipe", "--block", "1k", "-l", "4", "wc -l"], stdin: lines(1...2000))
        let sizes = counts.split(separator: "\n").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        #expect(sizes.first == 276 && sizes.reduce(0, +) == 2000 && sizes.allSatisfy { $0 % 4 == 0 })
    }

    /// --workdir ...: each job in ~/.parallel/tmp/HOST-PID-SEQ, gone when it ends; a job in a
    /// --workdir sees PWD as given (a link is not resolved) and OLDPWD where the run started.
    @Test func workdirsAsGNUGivesThem() async throws {
        let home = try RunCommandTests.scratch()
        let run = try await RunCommandTests.run(["--wd", "...", "pwd; touch made", ":::", "a"], environment: ["HOME": home.path])
        let directory = run.stdout.trimmingCharacters(in: .newlines)
        #expect(directory.hasPrefix(home.path + "/.parallel/tmp/") && directory.hasSuffix("-1"), "\(run.stdout)")
        #expect(!FileManager.default.fileExists(atPath: directory))
        let start = try RunCommandTests.scratch()
        let linked = try await RunCommandTests.run(["--wd", "/bin", "pwd; echo $OLDPWD", ":::", "x"], directory: start)
        #expect(linked.stdout == "/bin\n\(start.path) x\n")
    }

    /// -s given: a command line that does not fit is GNU's error, and nothing more starts.
    @Test func aLineLongerThanDashSStopsTheRun() async throws {
        let run = try await RunCommandTests.run(["-j1", "-k", "-s", "20", "echo", "{}", "{}", "{}"], stdin: "a\nbbbbbbb\nc\n")
        #expect(run.stdout == "a a a\n")
        #expect(run.stderr.contains("Error: Command line too long (28 >= 20) at input 0: bbbbbbb"))
        #expect(run.status == 255)
    }

    /// GNU makes $PARALLEL_HOME when it is set and missing; --open-tty without a terminal is
    /// silent (the job reads /dev/null).
    @Test func parallelHomeIsMadeAndAMissingTerminalIsSilent() async throws {
        let home = try RunCommandTests.scratch().appendingPathComponent("new/home").path
        let made = try await RunCommandTests.run(["echo", ":::", "OK"], environment: ["PARALLEL_HOME": home])
        #expect(made.stdout == "OK\n" && made.stderr.isEmpty)
        var isDirectory: ObjCBool = false
        #expect(FileManager.default.fileExists(atPath: home, isDirectory: &isDirectory) && isDirectory.boolValue)
        let tty = try await RunCommandTests.run(["-c", "setsid '\(WorkersBinaryTests.binary.path)' run --open-tty ::: 'tty; true' </dev/null"],
                                                executable: URL(fileURLWithPath: "/bin/bash"))
        #expect(tty.stdout == "not a tty\n" && tty.stderr.isEmpty, "\(tty.stderr)")
    }

    /// --tee: each ::: input is a job, and every job gets all the data; -j0 unless told, and
    /// GNU's error when -j cannot run them all at once. A job that stops reading early drops out.
    @Test func teeGivesEveryJobAllTheData() async throws {
        #expect(try await stdout(["--pipe", "--tee", "--tag", "-k", "cat", ":::", "a", "b"], stdin: lines(1...3)) == "a\t1\na\t2\na\t3\nb\t1\nb\t2\nb\t3\n")
        let big = String(repeating: "0123456789abcdef\n", count: 200_000)
        let counts = try await stdout(["--pipe", "--tee", "-k", "wc -c", ":::", "1", "2", "3"], stdin: big)
        #expect(counts.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) } == Array(repeating: "\(big.utf8.count)", count: 3))
        #expect(try await stdout(["--pipe", "--tee", "-k", "{}", ":::", "head -1", "wc -l"], stdin: lines(1...100_000)) == "1\n100000\n")
        let file = try RunCommandTests.scratch().appendingPathComponent("data").path
        try lines(1...5).write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try await stdout(["--pipe-part", "--tee", "-a", file, "-k", "cat", ":::", "x", "y"]) == lines(1...5) + lines(1...5))
        let narrow = try await RunCommandTests.run(["--pipe", "--tee", "-j2", "cat", ":::", "1", "2", "3"], stdin: "a\n")
        #expect(narrow.status == 255 && narrow.stdout.isEmpty)
        #expect(narrow.stderr.hasSuffix("Error: --tee requires --jobs to be higher. Try --jobs 0.\n"))
    }

    /// $PARALLEL_ENV (env_parallel's): shell code run before every command, from the variable or
    /// the file it names, and not passed on; `-l -0` is -l with -0; --retry-failed with
    /// --joblog - (stdout holds no earlier run) runs the inputs.
    @Test func parallelEnvAndOptionCorners() async throws {
        let variable = try await RunCommandTests.run(["{}", "$v", ":::", "echo"], environment: ["PARALLEL_ENV": "v='OK as variable'"])
        #expect(variable.stdout == "OK as variable\n")
        let file = try RunCommandTests.scratch().appendingPathComponent("env").path
        try "v='OK as file'\u{01}w=2".write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try await RunCommandTests.run(["{}", "$v$w", ":::", "echo"], environment: ["PARALLEL_ENV": file]).stdout == "OK as file2\n")
        let hidden = try await RunCommandTests.run(["echo \"[$PARALLEL_ENV]\"", ":::", "x"], environment: ["PARALLEL_ENV": "true"])
        #expect(hidden.stdout == "[] x\n")
        #expect(try await RunCommandTests.run(["-k", "-l", "-0", "echo", "{}", "OK"], stdin: "1\u{0}2\u{0}").stdout == "1 OK\n2 OK\n")
        // --retries {//}: each job's own count (GNU's par_retries_replacement_string: 1, 2, 3 runs).
        let log = try RunCommandTests.scratch().appendingPathComponent("ran").path
        _ = try await RunCommandTests.run(["--retries", "{//}", "echo {/} >> '\(log)'; exit {/}", ":::", "1/11", "2/22", "3/33"])
        #expect(try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").sorted() == ["11", "22", "22", "33", "33", "33"])
        // --load FILE: the limit is the file's number, read at each start.
        let loadFile = try RunCommandTests.scratch().appendingPathComponent("load").path
        try "9999\n".write(toFile: loadFile, atomically: true, encoding: .utf8)
        #expect(try await RunCommandTests.run(["--load", loadFile, "-k", "echo", ":::", "a", "b", "c"]).stdout == "a\nb\nc\n")
        #expect(try await RunCommandTests.run(["--load", "/no/such", "echo", ":::", "a"]).status == 255)
        let retried = try await RunCommandTests.run(["--retry-failed", "--jl", "-", "false", ":::", "a", "b"])
        #expect(retried.stdout.split(separator: "\n").count == 3 && retried.status == 2)
    }

    /// --header REGEXP with --pipe: what the regexp matches at the start is put before every block
    /// (GNU's par_header); one that never matches takes nothing. Without --pipe, a regexp header
    /// is the first line, as GNU's.
    @Test func headerRegexpStartsEveryBlock() async throws {
        let blocks = try await stdout(["-j1", "--pipe", "-N2", "-k", "--header", ".*\\n.*\\n", "echo Start;cat; echo Stop"],
                                      stdin: "h1\nh2\n1a\n1b\n2a\n2b\n3a\n")
        #expect(blocks == "Start\nh1\nh2\n1a\n1b\nStop\nStart\nh1\nh2\n2a\n2b\nStop\nStart\nh1\nh2\n3a\nStop\n")
        #expect(try await stdout(["--pipe", "--header", "q", "cat"], stdin: "x\ny\n") == "x\ny\n")
        #expect(try await stdout(["-k", "--header", ".*\\n", "echo", "{a}", ":::", "a", "1"]) == "1\n")
        let bad = try await RunCommandTests.run(["--pipe", "--header", "(", "cat"], stdin: "x\n")
        #expect(bad.status == 255 && bad.stderr.contains("--header: '(' is not a regular expression"))
    }

    /// --header (0 or any other) makes a file source's name a replacement string for its values,
    /// before --plus reads `{/…}` (GNU's par_file_rpl), and before positions: `{1}` is file `1`'s.
    @Test func fileNamesAsReplacementStrings() async throws {
        let directory = try RunCommandTests.scratch()
        let data = directory.appendingPathComponent("da  ta.txt").path, one = directory.appendingPathComponent("1").path
        try "content1\ncontent2\n".write(toFile: data, atomically: true, encoding: .utf8)
        try "n\n".write(toFile: one, atomically: true, encoding: .utf8)
        #expect(try await stdout(["-k", "--header", "0", "echo", "{\(data)}", "::::", data]) == "content1\ncontent2\n")
        #expect(try await stdout(["-k", "--header", "0", "--plus", "echo", "{\(data).}", "::::", data]) == "content1\ncontent2\n")
        #expect(try await stdout(["-k", "--header", "0", "echo", "{=\(data) s/c/C/ =}", "::::", data]) == "Content1\nContent2\n")
        let positions = try await RunCommandTests.run(["-k", "--header", "0", "echo", "{1}", "::::", data, "1"], directory: directory)
        #expect(positions.stdout == "n\nn\n")
    }

    /// --pipe and --pipe-part leave `:::` values out: `{}` is empty (GNU's par_pipepart_triple_colon).
    @Test func pipeIgnoresArgumentSources() async throws {
        let file = try RunCommandTests.scratch().appendingPathComponent("three").path
        try lines(1...3).write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try await stdout(["-k", "--pipe-part", "-a", file, "echo X{}Y; cat", ":::", "a"]) == "XY\n1\nXY\n2\nXY\n3\n")
        #expect(try await stdout(["--pipe", "cat", ":::", "a"], stdin: "x\n") == "x\n")
    }

    /// --pipe -N: GNU looks for a block's first record end from its second byte on, so an empty
    /// record first in a block joins the next one (par_pipe_no_run_if_empty's NUL case).
    @Test func pipeDashNJoinsAnEmptyFirstRecord() async throws {
        let blocks = try await stdout(["-k", "--pipe", "-N1", "cat; echo ."], stdin: "\n\na\n\nb\n")
        #expect(blocks == "\n\n.\na\n.\n\nb\n.\n")
        let nul = try await stdout(["-n", "1", "--pipe", "-r", "--recend", "\\0", "-k", "cat; echo"], stdin: " \u{0}A\u{0} \u{0}\u{0}B\u{0}\u{0} ")
        #expect(nul == " \u{0}\nA\u{0}\n \u{0}\n\u{0}B\u{0}\n\u{0} \n")
    }

    /// --tee jobs must all run at once: when the descriptors run out first, GNU's warning, its
    /// error, status 255 and none of the started jobs' output (par_--tee_too_many_args).
    @Test func teeBeyondTheDescriptorLimitFails() async throws {
        let script = #"ulimit -n 40; seq 3 | "$1" run -k --pipe -j0 --tee grep {} ::: $(seq 100); echo "status $?""#
        let run = try await RunCommandTests.run(["-c", script, "_", WorkersBinaryTests.binary.path], executable: URL(fileURLWithPath: "/bin/bash"))
        #expect(run.stdout == "status 255\n")
        #expect(run.stderr.contains("Warning: Only enough file handles to run"))
        #expect(run.stderr.hasSuffix("Error: --tee requires --jobs to be higher. Try --jobs 0.\n"))
    }
}
