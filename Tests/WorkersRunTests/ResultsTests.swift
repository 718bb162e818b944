import Testing
@testable import WorkersRun

/// `--results`: the layouts and formats, against GNU parallel 20221122's output (its man page
/// and runs recorded while building this).
@Suite struct ResultsTests {
    func writer(_ arguments: [String]) throws -> ResultsWriter {
        let options = try RunOptions.parse(arguments)
        return try ResultsWriter(name: options.results!, options: options, builder: try CommandBuilder(options: options))
    }

    @Test func theNameChoosesTheLayout() throws {
        #expect(try writer(["--results", "out", "echo", ":::", "a"]).layout == .tree(root: "out"))
        #expect(try writer(["--results", "my_{}", "echo", ":::", "a"]).layout == .template("my_{}"))
        #expect(try writer(["--results", "-.csv", "echo", ":::", "a"]).layout == .table(separator: UInt8(ascii: ",")))
        #expect(try writer(["--results", "-.tsv", "echo", ":::", "a"]).layout == .table(separator: UInt8(ascii: "\t")))
        #expect(try writer(["--res", "-.json", "echo", ":::", "a"]).layout == .json)
    }

    @Test func theTreeNumbersEachSourceAndEachColumn() throws {
        let two = try writer(["--results", "foo", "echo", ":::", "I", "II", ":::", "III", "IIII"])
        #expect(two.location(sequence: 1, arguments: ["I", "III"]) == "foo/1/I/2/III/")
        let perJob = try writer(["--results", "rr", "-N2", "echo", ":::", "a", "b", "c"])
        #expect(perJob.location(sequence: 1, arguments: ["a", "b"]) == "rr/1/a/1/b/")
        let columns = try writer(["--results", "cc", "--colsep", ",", "echo", ":::", "a,b"])
        #expect(columns.location(sequence: 1, arguments: ["a", "b"]) == "cc/1/a/2/b/")
    }

    @Test func templatesAreReplacedUnquoted() throws {
        let file = try writer(["--results", "my_{}", "echo", ":::", "a b"])
        #expect(file.location(sequence: 1, arguments: ["a b"]) == "my_a b")
        let directory = try writer(["--results", "d/{#}_{.}/", "echo", ":::", "x.txt"])
        #expect(directory.location(sequence: 7, arguments: ["x.txt"]) == "d/7_x/")
    }

    @Test func valuesBecomeOneDirectoryNameEach() {
        #expect(ResultsWriter.directoryName("c/d") == "c\\_d")
        #expect(ResultsWriter.directoryName("a\\b") == "a\\\\b")
        #expect(ResultsWriter.directoryName("t\tab") == "t\\tab")
        #expect(ResultsWriter.directoryName("$(id) `x` ;*") == "$(id) `x` ;*")
        #expect(ResultsWriter.directoryName(String(repeating: "é", count: 200)).utf8.count == 254)
    }

    @Test func csvQuotingIsGNUs() {
        let fields: [[UInt8]] = ["1", ":", "echo 'x,y'", "x,y", "q\"z", "plain", "two\nlines"].map { Array($0.utf8) }
        #expect(String(decoding: ResultsWriter.row(fields, separator: UInt8(ascii: ",")), as: UTF8.self)
            == "1,:,\"echo 'x,y'\",\"x,y\",\"q\"\"z\",plain,\"two\nlines\"\n")
        #expect(String(decoding: ResultsWriter.row(fields, separator: UInt8(ascii: "\t")), as: UTF8.self)
            == "1\t:\t\"echo 'x,y'\"\tx,y\t\"q\"\"z\"\tplain\t\"two\nlines\"\n")
    }

    @Test func jsonEscapesControlBytesAsUnicode() {
        #expect(String(decoding: jsonEscaped(Array("x\n\"\\\t".utf8)), as: UTF8.self) == "x\\u000a\\\"\\\\\\u0009")
    }

    @Test func resumeWorksFromResultsAlone() throws {
        #expect(try RunOptions.parse(["--resume", "--results", "d", "echo"]).resume)
        #expect(throws: RunUsageError("option --resume and --resume-failed need --joblog or --results", code: .conflictingOptions)) {
            try RunOptions.parse(["--resume", "echo"])
        }
    }
}
