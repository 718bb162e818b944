import Foundation
import Testing

/// `workers run` with `{= perl =}`, `--rpl`, `--plus` and the `--…replace` renames, end to end;
/// each expectation is GNU parallel 20221122's output for the same command line.
@Suite(.timeLimit(.minutes(3))) struct RunPerlCommandTests {
    func stdout(_ arguments: [String], stdin: String = "") async throws -> String {
        let output = try await RunCommandTests.run(arguments, stdin: stdin)
        #expect(output.status == 0, "\(arguments): \(output.stderr)")
        return output.stdout
    }

    /// GNU's par_perlexpr_repl: `{=` and `=}` in separate words, empty expressions, the
    /// rightmost `{=`, and `{2}` inside an expression being Perl, not a replacement string.
    @Test func expressionsInEveryShapeGNUAccepts() async throws {
        let cases: [([String], String)] = [
            (["echo", "{=", "s/a/b/", "=}"], "b"), (["echo", "{= s/a/b/=}{= s/a/b/=}"], "bb"),
            (["echo", "{= s/a/b/=}{= {= s/a/b/=}"], "b{= b"), (["echo", "{= s/a/b/ =}", "{={==}"], "b {=a"),
            (["echo", "{={= =}"], "{=a"), (["echo", "{= {= =} =}"], "{= a =}"),
        ]
        for (command, expected) in cases {
            #expect(try await stdout(command + [":::", "a"]) == expected + "\n", "\(command)")
        }
        #expect(try await stdout(["echo", "{= s/O{2}//=}", ":::", "OOOK"]) == "OK\n")
        #expect(try await stdout(["echo", "{2}-{=1 s/O{2}//=}", ":::", "OOOK", ":::", "OK"]) == "OK-OK\n")
    }

    /// One interpreter for the run (bug #45842: never evaluated twice), `uq()`, positions,
    /// `--header` names and `total_jobs()`.
    @Test func stateQuotingPositionsAndTotals() async throws {
        #expect(try await stdout(["-k", "echo", "{=  $_=++$::G =}", ":::", "x", "y", ":::", "a", "b"]) == "1 2\n3 4\n5 6\n7 8\n")
        #expect(try await stdout(["-k", "echo", "{=1 $_=++$::G =}", ":::", "x", "y", ":::", "a", "b"]) == "1\n2\n3\n4\n")
        #expect(try await stdout(["echo", "{}{=uq()=}", ":::", "`echo foo`"]) == "`echo foo`foo\n")
        #expect(try await stdout(["--header", ":", "echo", "{=v2=}{=v1 $_=Q($_)=}", ":::", "v1", "K", ":::", "v2", "O"]) == "OK\n")
        #expect(try await stdout(["-k", "echo", "{=1 $_=total_jobs() =}", ":::", "a", "b"]) == "2\n2\n")
        // Perl sees bytes: é is two of them.
        let bytes = try await RunCommandTests.run(["printf '%s\\n'", "{= s/f/g/; $_ .= length =}"], stdin: "caf\u{E9}\n")
        #expect(bytes.stdout == "cag\u{E9}5\n")
    }

    /// `$job->skip()`: the job does not run; with -k the rest still print; the joblog says -2
    /// and the exit status counts it, as GNU's.
    @Test func skipLeavesTheJobOut() async throws {
        let directory = try RunCommandTests.scratch()
        let joblog = directory.appendingPathComponent("log").path
        let run = try await RunCommandTests.run(["-k", "--joblog", joblog, "echo", "{= $_ eq \"b\" and $job->skip() =}", ":::", "a", "b", "c"])
        #expect(run.stdout == "a\nc\n")
        #expect(run.status == 1)
        let chosen = try await RunCommandTests.run(["--plus", "-k", "echo", "{choose_k}", ":::", "A", "B", "C", ":::", "A", "B", "C"])
        #expect(chosen.stdout == "A B\nA C\nB C\n")
        #expect(chosen.status == 6)
        let rows = try String(contentsOfFile: joblog, encoding: .utf8).split(separator: "\n").map { $0.split(separator: "\t") }
        #expect(rows.count == 4)
        #expect(rows.first { $0[0] == "2" }?[6] == "-2")
    }

    @Test func rplPlusAndTheRenamingOptions() async throws {
        #expect(try await stdout(["--plus", "echo", "{..}", "{+..}", "{%.gz}", "{#a}", "{/b/X}", "{:1:2}", "{^a}", ":::", "a.tar.gz"])
            == "a tar.gz a.tar .tar.gz a.tar.gz .t A.tar.gz\n")
        #expect(try await stdout(["--plus", "-k", "echo", "{##}", "{0#}", ":::"] + (1...10).map(String.init)).hasPrefix("10 01\n10 02\n"))
        #expect(try await stdout(["--rpl", #"{/(\.\S+)/(\.\S+)} s/$$1/$$2/g;"#, "echo", "{/.tar/.gz}", ":::", "UU.tar.gz"]) == "UU.gz.gz\n")
        #expect(try await stdout(["--plus", "echo", "{2..}", "{1}", ":::", "a.b.c", ":::", "x.y.z"]) == "x a.b.c\n")
        for (option, expected) in [("--extensionreplace", "A/B"), ("--basenamereplace", "B.C"), ("--dirnamereplace", "A"),
                                   ("--basenameextensionreplace", "B"), ("--seqreplace", "1")] {
            #expect(try await stdout([option, ",,", "echo", ",,", ":::", "A/B.C"]) == expected + "\n", "\(option)")
        }
    }

    /// GNU: "Cannot use CODE: …", status 255, no job run.
    @Test func anExpressionThatDoesNotCompileStopsTheRun() async throws {
        let run = try await RunCommandTests.run(["echo", "{= s/(/ =}", ":::", "a"])
        #expect(run.status == 255)
        #expect(run.stdout == "")
        #expect(run.stderr.contains("Cannot use s/(/ "))
    }
}
