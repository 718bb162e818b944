import Testing
@testable import WorkersRun

/// Replacement strings and quoting, against GNU parallel's documented results (its man page and
/// runs of Debian's parallel 20221122 recorded in the project notes).
@Suite struct CommandBuilderTests {
    func command(_ template: [String], _ arguments: [String], sequence: Int = 1, slot: Int = 1, configure: (inout RunOptions) -> Void = { _ in }) throws -> String {
        var options = RunOptions()
        options.template = template
        configure(&options)
        return try CommandBuilder(options: options).commandLine(for: .init(arguments: arguments, sequence: sequence, slot: slot))
    }

    /// GNU quotes the inputs unless the command's first word holds a replacement string:
    /// `echo 'cho hi' | parallel e{}` prints `hi`; `V={} cmd` and `'echo {}'` quote.
    @Test func aReplacementStringInTheCommandWordIsNotQuoted() throws {
        #expect(try command(["e{}"], ["cho hi"]) == "echo hi")
        #expect(try command(["{}"], ["echo a b"]) == "echo a b")
        #expect(try command(["{2}", "x"], ["a b", "echo"]) == "echo x")
        #expect(try command(["V={}", "cmd"], ["a b"]) == "V='a b' cmd")
        #expect(try command(["echo {}"], ["a b"]) == "echo 'a b'")
    }

    @Test func pathReplacementStringsAsGNU() throws {
        let path = "dir.x/sub/file.tar.gz"
        #expect(try command(["echo", "{.}"], [path]) == "echo dir.x/sub/file.tar")
        #expect(try command(["echo", "{/}"], [path]) == "echo file.tar.gz")
        #expect(try command(["echo", "{//}"], [path]) == "echo dir.x/sub")
        #expect(try command(["echo", "{/.}"], [path]) == "echo file.tar")
        #expect(try command(["echo", "{//}"], ["a"]) == "echo .")
        #expect(try command(["echo", "{.}"], ["sub.dir/bar"]) == "echo sub.dir/bar")
        #expect(try command(["echo", "{//}"], ["/a"]) == "echo /")
    }

    /// GNU's `{.}` is `s:\.[^/.]*$::` and its `{//}` Perl's dirname; checked against parallel 20221122.
    @Test(arguments: [
        (".hidden", ".", ""), ("dir/.hidden", "dir", "dir/"), ("a.", ".", "a"), ("a.b c", ".", "a"),
        ("/", "/", "/"), ("/a", "/", "/a"), ("a/", ".", "a/"), ("a//b", "a", "a//b"), ("a", ".", "a"),
        ("/x.y/z", "/x.y", "/x.y/z"),
    ])
    func dotAndDirnameEdgesAsGNU(value: String, dirname: String, noExtension: String) throws {
        #expect(try command(["echo", "{//}"], [value], configure: { $0.replacement = "{}" }) == "echo " + shellQuote(dirname))
        #expect(try command(["echo", "{.}"], [value]) == "echo " + shellQuote(noExtension))
    }

    @Test func sequenceSlotAndPositions() throws {
        #expect(try command(["echo", "{#}", "{%}"], ["x"], sequence: 7, slot: 2) == "echo 7 2")
        // A missing position is nothing, not an empty quoted word (GNU 20221122: `echo b a `).
        #expect(try command(["echo", "{2}", "{1}", "{3}"], ["a", "b"]) == "echo b a ")
        #expect(try command(["echo", "{1.}", "{2/}", "{2//}", "{1/.}"], ["p/a.txt", "q/r/b.c"]) == "echo p/a b.c q/r a")
        #expect(try command(["echo", "{}"], ["a", "b"]) == "echo a b")
    }

    @Test func aTemplateWithoutAReplacementStringGetsOneAppended() throws {
        // `parallel 'sleep 0.1' ::: 1` runs `sleep 0.1 1`.
        #expect(try command(["sleep 0.1"], ["1"]) == "sleep 0.1 1")
        #expect(try command(["gzip", "-9"], ["b c.txt"]) == "gzip -9 'b c.txt'")
    }

    @Test func theTemplateIsShellCodeAndArgumentsAreQuoted() throws {
        #expect(try command(["zcat {} | wc -l > {.}.n"], ["a b.gz"]) == "zcat 'a b.gz' | wc -l > 'a b'.n")
        #expect(try command(["printf", "'<%s>\\n'"], ["x"]) == "printf '<%s>\\n' x")
    }

    @Test(arguments: ["a b", "it's", "say \"hi\"", "$(rm -rf /)", "`id`", "a;b", "*", "new\nline", "-rf", "", "$HOME", "a\\b", "x|y&z"])
    func hostileArgumentsAreOneQuotedWord(_ hostile: String) throws {
        let line = try command(["echo"], [hostile])
        #expect(line == "echo " + shellQuote(hostile))
        if hostile != "-rf" { #expect(line != "echo " + hostile) }
    }

    @Test func aTemplateStartingWithAReplacementStringIsNotQuoted() throws {
        // GNU: `parallel {} ::: "echo a"` runs the argument as a command.
        #expect(try command(["{}"], ["echo a; echo b"]) == "echo a; echo b")
        #expect(try command(["{1}", "x"], ["ls -l"]) == "ls -l x")
    }

    @Test func noCommandMakesEachInputACommand() throws {
        #expect(try command([], ["echo 1 && echo 2"]) == "echo 1 && echo 2")
    }

    @Test func dashQQuotesTheTemplateWordsToo() throws {
        #expect(try command(["echo", "a;b", "{}"], ["c d"]) { $0.quoteTemplate = true } == "echo 'a;b' 'c d'")
    }

    @Test func dashIRenamesTheReplacementString() throws {
        #expect(try command(["mv", "XX", "XX.bak"], ["f g"]) { $0.replacement = "XX" } == "mv 'f g' 'f g'.bak")
        #expect(try command(["echo", "{}", "XX"], ["a"]) { $0.replacement = "XX" } == "echo {} a")
    }

    @Test func noShellModeGivesArgvWithValuesAsData() throws {
        var options = RunOptions()
        options.template = ["cp", "{}", "{.}.bak"]
        options.noShell = true
        let builder = try CommandBuilder(options: options)
        #expect(builder.argv(for: .init(arguments: ["$(x) y.txt"], sequence: 1, slot: 1)) == ["cp", "$(x) y.txt", "$(x) y.bak"])
        options.template = ["echo"]
        #expect(try CommandBuilder(options: options).argv(for: .init(arguments: ["a", "b"], sequence: 1, slot: 1)) == ["echo", "a", "b"])
    }

    @Test func shellQuoteLeavesSafeWordsAlone() {
        #expect(shellQuote("file-1.txt") == "file-1.txt")
        #expect(shellQuote("a b") == "'a b'")
        #expect(shellQuote("it's") == "'it'\"'\"'s'")
        #expect(shellQuote("") == "''")
    }

    /// GNU's `Q`: only `[-_.+a-zA-Z0-9/]` is safe, and an empty `''` at either end is dropped.
    @Test(arguments: [("a=b", "'a=b'"), ("x:y", "'x:y'"), ("a,b", "'a,b'"), ("u@h", "'u@h'"), ("50%", "'50%'"), ("a+b", "a+b"),
                      ("'a", "\"'\"'a'"), ("a'", "'a'\"'\""), ("''", "\"'\"''\"'\"")])
    func shellQuoteWritesWhatGNUWrites(value: String, quoted: String) {
        #expect(shellQuote(value) == quoted)
    }

    /// GNU allows blanks between a position and the rest: `{1\n }` is `{1}`, `{2 .}` is `{2.}`.
    @Test func blanksInsideAPositionalReplacementString() throws {
        #expect(try command(["echo {1\n      } {2 .}"], ["O", "K.x"]) == "echo O K")
    }
}

@Suite struct RunOptionsTests {
    @Test func optionsCommandAndSources() throws {
        let options = try RunOptions.parse(["-j4", "-k", "--tag", "echo", "{1}", "{2}", ":::", "a", "b", ":::+", "1", "2", "::::", "list.txt"])
        #expect(options.jobs == .count(4))
        #expect(options.keepOrder && options.tag)
        #expect(options.template == ["echo", "{1}", "{2}"])
        #expect(options.sources == [.arguments(["a", "b"]), .arguments(["1", "2"]), .file("list.txt")])
        #expect(options.linked == [false, true, false])
    }

    @Test(arguments: [("2", RunOptions.Jobs.count(2)), ("50%", .percent(50)), ("+1", .plus(1)), ("-1", .minus(1)), ("0", .unlimited)])
    func jobCounts(_ text: String, _ expected: RunOptions.Jobs) throws {
        #expect(try RunOptions.parse(["-j", text, "true"]).jobs == expected)
        #expect(RunOptions.Jobs.percent(200).slots(cpus: 2) == 4)
        #expect(RunOptions.Jobs.minus(5).slots(cpus: 2) == 1)
    }

    @Test func haltForms() throws {
        #expect(try RunOptions.parseHalt("now,fail=1") == .init(when: .now, why: .fail, threshold: .count(1)))
        #expect(try RunOptions.parseHalt("soon,success=20%") == .init(when: .soon, why: .success, threshold: .percent(20)))
        #expect(try RunOptions.parseHalt("2") == .init(when: .now, why: .fail, threshold: .count(1)))
        #expect(throws: RunUsageError.self) { try RunOptions.parseHalt("later,fail=1") }
    }

    /// GNU parallel 20221122's `should_we_halt`, case by case (each checked against it).
    @Test(arguments: [
        // (halt, failed, succeeded, total, this job failed, its exit) -> status, or nil to go on
        ("now,success=1", 1, 1, 3, false, 0, Int32?(0)),
        ("now,done=1", 0, 1, 4, false, 0, 0),
        ("now,done=1", 1, 0, 4, true, 3, 3),
        ("now,done=2", 1, 1, 4, false, 0, 1),
        ("now,fail=2", 2, 1, 4, true, 3, 2),
        ("now,fail=2", 1, 1, 4, true, 3, nil),
        ("now,success=50%", 1, 2, 5, false, 0, nil),
        ("now,success=50%", 1, 3, 5, false, 0, 0),
        ("now,fail=34%", 2, 2, 6, true, 1, nil),
        ("now,fail=34%", 3, 2, 6, true, 1, 50),
        ("now,fail=20%", 1, 2, 5, true, 4, 4),
        ("30%", 2, 2, 5, true, 1, 40),
        ("soon,fail=1", 0, 3, 5, false, 0, nil),
    ])
    func haltDecisionsAsGNU(halt: String, failed: Int, succeeded: Int, total: Int, failedNow: Bool, exit: Int32, status: Int32?) throws {
        let parsed = try #require(try RunOptions.parseHalt(halt))
        #expect(Runner.haltStatus(parsed, failed: failed, succeeded: succeeded, total: total, failedNow: failedNow, exit: exit, signal: 0) == status)
    }

    @Test func theFinalStatusUnderAPercentHaltIsAPercentage() {
        #expect(Runner.finalStatus(nil, failed: 150, total: 200) == 101)
        #expect(Runner.finalStatus(RunOptions.Halt(when: .now, why: .fail, threshold: .percent(90)), failed: 1, total: 3) == 34)
    }

    @Test func unsupportedAndUnknownOptionsAreNamed() throws {
        #expect(throws: RunUsageError("option --tmux is not supported by workers run", code: .unsupportedOption)) { try RunOptions.parse(["--tmux", "echo"]) }
        #expect(throws: RunUsageError("unknown option --frobnicate", code: .unknownOption)) { try RunOptions.parse(["--frobnicate", "echo"]) }
        #expect(throws: RunUsageError("option -j: 'x' is not N, N%, +N, -N, 0 or a file holding one", code: .invalidValue)) { try RunOptions.parse(["-j", "x", "echo"]) }
    }

    /// `{= … =}` is Perl, evaluated, quoted like any value, and never run as shell code.
    @Test func perlReplacementStringsAreEvaluatedNotRunAsShell() throws {
        let options = try RunOptions.parse(["echo", "{= $_ = \"$_ ;x\" =}", ":::", "a"])
        #expect(try CommandBuilder(options: options).commandLine(for: .init(arguments: ["a"], sequence: 1, slot: 1)) == "echo 'a ;x'")
    }

    @Test func ungroupDropsKeepOrderAndTagAsGNUDoes() throws {
        let options = try RunOptions.parse(["-u", "-k", "--tag", "echo"])
        #expect(!options.keepOrder)
        #expect(!options.tag)
    }

    @Test func tripleColonValuesSplitOnNewlines() throws {
        #expect(try RunOptions.parse(["echo", ":::", "a\nb"]).sources == [.arguments(["a", "b"])])
    }

    @Test func throttlesBarAndLineBuffer() throws {
        let options = try RunOptions.parse(["--load", "3", "--memfree", "512M", "--bar", "--lb", "echo"])
        #expect(options.maximumLoad == 3)
        #expect(options.minimumFreeMemory == 512 << 20)
        #expect(options.bar && options.output == .lineBuffered)
        #expect(throws: RunUsageError.self) { try RunOptions.parse(["--memfree", "lots", "echo"]) }
    }

    @Test func theBarShowsShareCountFailuresAndTimeLeft() {
        #expect(Runner.bar(done: 3, total: 10, failed: 1, elapsed: 6, width: 10) == "[###.......] 30% 3/10 jobs · 1 failed · 0:14 left")
        #expect(Runner.bar(done: 10, total: 10, failed: 0, elapsed: 6, width: 4) == "[####] 100% 10/10 jobs")
    }

    @Test func terminateSequencesParse() throws {
        #expect(try RunOptions.parseTerminateSequence("INT,200,SIGKILL,25") == [.init(signal: 2, wait: 0.2), .init(signal: 9, wait: 0.025)])
        #expect(try RunOptions.parseTerminateSequence("15") == [.init(signal: 15, wait: 0)])
        #expect(throws: RunUsageError.self) { try RunOptions.parseTerminateSequence("TERM,soon") }
        #expect(throws: RunUsageError.self) { try RunOptions.parseTerminateSequence("NOPE,10") }
    }

    @Test func optionsGNUHasThatWorkersRunNowTakes() throws {
        let options = try RunOptions.parse(["-v", "-t", "--shuf", "--nice", "3", "--wd", "/tmp", "--trim", "rl", "-r", "-E", "END",
                                            "--env", "PATH", "--arg-sep", "@@", "echo", "@@", "a"])
        #expect(options.verbose && options.printCommands && options.shuffle && options.skipBlankInputs)
        #expect(options.niceness == 3 && options.workingDirectory == "/tmp" && options.trim == .both && options.endOfFile == "END")
        #expect(options.sources == [.arguments(["a"])])
        #expect(throws: RunUsageError("option --retry-failed needs --joblog", code: .conflictingOptions)) { try RunOptions.parse(["--retry-failed"]) }
        #expect(throws: RunUsageError.self) { try RunOptions.parse(["--trim", "x", "echo"]) }
    }

    @Test func ttyDefaultsToOneJobUngroupedUnlessTold() throws {
        let plain = try RunOptions.parse(["--tty", "vi"])
        #expect(plain.openTerminal && plain.jobs == .count(1) && plain.output == .ungrouped)
        let told = try RunOptions.parse(["--tty", "-j2", "--group", "vi"])
        #expect(told.jobs == .count(2) && told.output == .grouped)
        let open = try RunOptions.parse(["--open-tty", "vi"])
        #expect(open.openTerminal && open.jobs == .percent(100) && open.output == .grouped)
    }

    @Test func citeFlagsAreAcceptedAndIgnored() throws {
        #expect(try RunOptions.parse(["--will-cite", "--no-notice", "echo"]).template == ["echo"])
    }
}

@Suite struct JobInputsTests {
    @Test func anEmptySourceAmongOthersIsOneEmptyValue() throws {
        var options = try RunOptions.parse(["echo", ":::", "a", "b", ":::"])
        let inputs = try JobInputs(options: options)
        #expect(inputs.next() == ["a", ""])
        #expect(inputs.next() == ["b", ""])
        #expect(inputs.next() == nil)
        options = try RunOptions.parse(["echo", ":::", ":::"])
        #expect(try JobInputs(options: options).next() == nil)
    }

    @Test func severalSourcesGiveTheCartesianProductFirstSlowest() {
        #expect(JobInputs.combine([["a", "b"], ["1", "2"]], linked: [false, false], linkAll: false) == [["a", "1"], ["a", "2"], ["b", "1"], ["b", "2"]])
    }

    @Test func linkedSourcesPairUpShortestWins() {
        #expect(JobInputs.combine([["a", "b", "c"], ["1", "2"]], linked: [false, true], linkAll: false) == [["a", "1"], ["b", "2"]])
    }

    @Test func linkWrapsTheShorterSources() {
        #expect(JobInputs.combine([["a", "b", "c"], ["1", "2"]], linked: [false, false], linkAll: true) == [["a", "1"], ["b", "2"], ["c", "1"]])
    }
}

@Suite struct SimpleCommandTests {
    @Test func plainWordsAndSingleQuotesNeedNoShell() {
        #expect(simpleCommandWords("gzip -9 'b c.txt'") == ["gzip", "-9", "b c.txt"])
        #expect(simpleCommandWords("cp -- 'it'\"'\"'s' x") == ["cp", "--", "it's", "x"])
        #expect(simpleCommandWords("true 1") == ["true", "1"])
        #expect(simpleCommandWords("cat ''") == ["cat", ""])
    }

    @Test(arguments: ["echo a", "ls > x", "a | b", "a; b", "a && b", "x=1 cmd", "cmd $HOME", "cmd `id`", "cmd *", "cmd \\x", "cmd \"a\"", "cmd 'open", "exit 3", "cd /", "cmd # c"])
    func anythingAShellWouldInterpretGoesToTheShell(_ line: String) {
        #expect(simpleCommandWords(line) == nil)
    }

    /// Quoting then un-quoting gives back every hostile value exactly.
    @Test(arguments: ["a b", "it's", "say \"hi\"", "$(rm -rf /)", "`id`", "a;b", "*", "new\nline", "-rf", "", "a\\b"])
    func quotedValuesComeBackExactly(_ value: String) {
        let line = "cat " + shellQuote(value)
        if let words = simpleCommandWords(line) { #expect(words == ["cat", value]) }
    }
}
