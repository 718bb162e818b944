import Testing
@testable import WorkersRun

/// `{= perl =}`, `--rpl` and `--plus`: how the template is read (pure), and the evaluator against
/// GNU parallel 20221122's results for the same expressions (perl is part of every Debian system;
/// GNU parallel is not needed).
@Suite struct PerlReplacementTests {
    func token(_ text: String, names: [String: Int] = [:]) -> CommandBuilder.Token? {
        CommandBuilder.token(at: Substring(text), replacement: "{}", names: names)?.0
    }

    /// GNU matches the rightmost `{=` before the next `=}`; a leading number or `--header` name
    /// makes the expression positional.
    @Test func expressionsAreReadAsGNUReadsThem() {
        #expect(token("{= s/a/b/ =}") == .perl(code: "s/a/b/ ", position: nil))
        #expect(token("{=2 s/a/b/ =}") == .perl(code: " s/a/b/ ", position: 2))
        #expect(token("{=-1 s/a/b/ =}") == .perl(code: " s/a/b/ ", position: -1))
        #expect(token("{==}") == .perl(code: "", position: nil))
        #expect(token("{=v1 $_=Q($_)=}", names: ["v1": 3]) == .perl(code: " $_=Q($_)", position: 3))
        // `{={==}`: the first `{=` is text, `{==}` the expression.
        #expect(token("{={==}") == nil)
        #expect(token("{=") == nil)
        #expect(CommandBuilder.perlCodes(in: "x{= s/a/b/=}{={= uq() =}", replacement: "{}", names: [:]) == ["s/a/b/", "uq() "])
    }

    /// `'{='` `'s/a/b/'` `'=}'` as three words are one (GNU's merge_rpl_parts), and -X never
    /// splits an expression at its spaces.
    @Test func wordsAreMergedAndNeverSplitInsideAnExpression() {
        #expect(CommandBuilder.mergingPerlWords(["echo", "{=", "s/a/b/", "=}", "x"]) == ["echo", "{= s/a/b/ =}", "x"])
        #expect(CommandBuilder.mergingPerlWords(["{==}", "{=", "=}"]) == ["{==}", "{= =}"])
        #expect(CommandBuilder.mergingPerlWords(["a{=", "b"]) == ["a{= b"])
        #expect(CommandBuilder.splitKeepingPerl("pre{= s/a b/c/ =}post x") == ["pre{= s/a b/c/ =}post", "x"])
    }

    /// `--rpl` tags with a group hand its captures to the code as `$$1`; positional forms work
    /// for tags that start with `{`; an expression already written is left alone.
    @Test func shorthandsBecomeExpressions() throws {
        let rpl = try ReplacementShorthands(rpl: [#"{/(\.\S+)/(\.\S+)} s/$$1/$$2/g;"#, "{..} s:\\.[^.]+$::;"], plus: false)
        #expect(rpl.rewrite("echo {/.tar/.gz}") == #"echo {=$_pAr_gRp1 = ".tar";$_pAr_gRp2 = ".gz";s/$_pAr_gRp1/$_pAr_gRp2/g;=}"#)
        #expect(rpl.rewrite("{2..}") == "{=2s:\\.[^.]+$::;=}")
        #expect(rpl.rewrite("{= {..} =}") == "{= {..} =}")
        #expect(ReplacementShorthands.perlQuote(#"a"$b@c\"#) == #"a\"\$b\@c\\"#)
        // A tag alone is the input as it is (GNU's `--rpl '%'`).
        #expect(try ReplacementShorthands(rpl: ["%"], plus: false).rewrite("a%b") == "a{==}b")
        #expect(throws: RunUsageError.self) { try ReplacementShorthands(rpl: [" code"], plus: false) }
    }

    func evaluate(_ code: String, _ value: String, arguments: [String]? = nil, sequence: Int = 1, perl: PerlEvaluator? = nil) throws -> PerlEvaluator.Value {
        let evaluator = try perl ?? PerlEvaluator(codes: [code])
        return evaluator.value(of: code, input: 0, value: value, job: .init(arguments: arguments ?? [value], sequence: sequence, slot: 1))
    }

    @Test func theEvaluatorGivesWhatGNUGives() throws {
        #expect(try evaluate("s/a/b/", "aa").text == "ba")
        #expect(try evaluate("$_ = Q($_)", "a b").text == "'a b'")
        #expect(try evaluate("$_ = pQ($_)", "$x\"").text == "\\$x\\\"")
        #expect(try evaluate("uq()", "`x`") == .init(text: "`x`", unquoted: true))
        #expect(try evaluate("$_ = $arg[2]", "a", arguments: ["a", "b"]).text == "b")
        #expect(try evaluate("$_ = $job->seq() . slot()", "a", sequence: 7).text == "71")
        // Bytes that are not UTF-8 go through as bytes.
        #expect(try evaluate("s/f/g/", "caf\u{10FEE9}").text == "cag\u{10FEE9}")
        #expect(try evaluate("$_ = length", "caf\u{10FEE9}").text == "4")
        // B::hash, as GNU's: "0x" and hex digits (seeded per process, so not a fixed value).
        let hash = try evaluate("$_ = hash($_)", "1").text
        #expect(hash.hasPrefix("0x") && (1...16).contains(hash.count - 2) && hash.dropFirst(2).allSatisfy(\.isHexDigit))
    }

    /// One perl for the run: globals last from job to job; a job's value is computed once.
    @Test func stateLastsAndValuesAreComputedOncePerJob() throws {
        let perl = try PerlEvaluator(codes: ["$_ = ++$::G"])
        #expect(try evaluate("$_ = ++$::G", "x", sequence: 1, perl: perl).text == "1")
        #expect(try evaluate("$_ = ++$::G", "x", sequence: 1, perl: perl).text == "1")
        #expect(try evaluate("$_ = ++$::G", "x", sequence: 2, perl: perl).text == "2")
    }

    @Test func skipIsRememberedForItsJob() throws {
        let perl = try PerlEvaluator(codes: ["$_ eq 'b' and skip()"])
        _ = try evaluate("$_ eq 'b' and skip()", "a", sequence: 1, perl: perl)
        _ = try evaluate("$_ eq 'b' and skip()", "b", sequence: 2, perl: perl)
        #expect(!perl.takeSkip(1))
        #expect(perl.takeSkip(2))
        #expect(!perl.takeSkip(2))
    }

    /// A bad expression is GNU's "Cannot use …" before any job runs; one that dies while running
    /// costs its value, not the run.
    @Test func badExpressionsAreErrorsThatNameThemselves() throws {
        #expect(throws: RunUsageError.self) { try PerlEvaluator(codes: ["s/(/"]) }
        let perl = try PerlEvaluator(codes: ["die 'no'"])
        #expect(try evaluate("die 'no'", "a", perl: perl).text == "")
        #expect(try evaluate("s/a/b/", "a", sequence: 2, perl: perl).text == "b")
    }
}
