import Testing
@testable import WorkersRun

/// The command line read as GNU parallel 20221122 reads it (Getopt::Long, bundling,
/// require_order). Each expectation was checked against Debian's GNU parallel 20221122.
@Suite struct OptionParserTests {
    @Test(arguments: [["-kv"], ["-vk"], ["-k", "-v"]])
    func shortOptionsBundle(_ words: [String]) throws {
        // parallel -kv echo ::: a  →  "echo a", "a"
        let options = try RunOptions.parse(words + ["echo", ":::", "a"])
        #expect(options.keepOrder && options.verbose)
        #expect(options.template == ["echo"])
    }

    @Test func aBundledOptionWithAValueTakesTheRestOfTheWordOrTheNext() throws {
        #expect(try RunOptions.parse(["-kj2", "echo"]).jobs == .count(2))
        #expect(try RunOptions.parse(["-kj", "2", "echo"]).jobs == .count(2))
        #expect(try RunOptions.parse(["-kvj0", "echo"]).jobs == .unlimited)
        let options = try RunOptions.parse(["-kN1", "-Xj1", "echo"])
        #expect(options.argumentsPerJob == 1 && options.multiple == .contextReplace && options.jobs == .count(1))
        // -j -1: a required value is taken even when it starts with a dash.
        #expect(try RunOptions.parse(["-j", "-1", "echo"]).jobs == .minus(1))
    }

    @Test func aBundleWithAnUnknownLetterNamesTheLetter() {
        // parallel -X1 echo ::: k  →  "Unknown option: 1", status 255
        #expect(throws: RunUsageError("unknown option -1 (in -X1)", code: .unknownOption)) { try RunOptions.parse(["-X1", "echo"]) }
        #expect(throws: RunUsageError("unknown option -y", code: .unknownOption)) { try RunOptions.parse(["-y", "echo"]) }
    }

    @Test func longOptionsAbbreviateToAUniquePrefixAndIgnoreCase() throws {
        #expect(try RunOptions.parse(["--line-buf", "echo"]).output == .lineBuffered)
        #expect(try RunOptions.parse(["--TAG", "echo"]).tag)
        #expect(try RunOptions.parse(["--keep", "echo"]).keepOrder)
        #expect(try RunOptions.parse(["--jobs=3", "echo"]).jobs == .count(3))
        // parallel --ta echo  →  "Option ta is ambiguous (tag, tag-string, tagstring)"
        #expect(throws: RunUsageError("option --ta is ambiguous (--tag, --tag-string, --tagstring)", code: .unknownOption)) { try RunOptions.parse(["--ta", "echo"]) }
        #expect(throws: RunUsageError("option --tag does not take a value", code: .invalidValue)) { try RunOptions.parse(["--tag=x", "echo"]) }
    }

    @Test func gnuAliasesAreOneOption() throws {
        #expect(try RunOptions.parse(["--jl", "log", "echo"]).joblog == "log")
        #expect(try RunOptions.parse(["--xapply", "echo"]).link)
        #expect(try RunOptions.parse(["--nn", "--willcite", "echo"]).template == ["echo"])
        #expect(try RunOptions.parse(["-P", "3", "echo"]).jobs == .count(3))
        #expect(throws: RunUsageError("option --remove-rec-sep is not supported by workers run", code: .unsupportedOption)) { try RunOptions.parse(["--rrs", "echo"]) }
    }

    @Test func optionalValuesTakeTheNextWordOnlyWhenItIsOne() throws {
        // parallel -i -k echo from {} to x{}y ::: x  →  "from x to xxy"
        let dashI = try RunOptions.parse(["-i", "-k", "echo", "from", "{}", "to", "x{}y", ":::", "x"])
        #expect(dashI.replacement == "{}" && dashI.keepOrder && dashI.template == ["echo", "from", "{}", "to", "x{}y"])
        #expect(try RunOptions.parse(["-i%", "echo"]).replacement == "%")
        // parallel -i echo x{} ::: a  →  -i takes "echo": the command is x{}
        #expect(try RunOptions.parse(["-i", "echo", "x{}"]).template == ["x{}"])
        // -l takes a number only: parallel -kl echo ::: g  →  "g"
        let dashL = try RunOptions.parse(["-kl", "echo"])
        #expect(dashL.argumentsPerJob == 1 && dashL.joinContinuedLines && dashL.template == ["echo"])
        #expect(try RunOptions.parse(["-l", "3", "echo"]).argumentsPerJob == 3)
        #expect(try RunOptions.parse(["-l2k", "echo"]).keepOrder)
        #expect(try RunOptions.parse(["-e", "echo", "x"]).endOfFile == "echo")
        #expect(try RunOptions.parse(["-e", "-k", "echo"]).endOfFile == nil)
    }

    @Test func verboseIsDashTOnStderrAndDashVIsStdout() throws {
        // parallel --verbose echo ::: a 2>/dev/null  →  "a" (the command went to stderr)
        let verbose = try RunOptions.parse(["--verbose", "echo"])
        #expect(verbose.printCommands && !verbose.verbose)
        #expect(try RunOptions.parse(["-v", "echo"]).verbose)
        let silent = try RunOptions.parse(["-v", "-t", "--silent", "echo"])
        #expect(!silent.verbose && !silent.printCommands)
    }

    @Test func gnuValueForms() throws {
        #expect(try RunOptions.parse(["--retries", "0", "echo"]).retries == Int(Int32.max))
        // parallel -L0 echo ::: a  →  one empty line
        let l0 = try RunOptions.parse(["-L0", "echo"])
        #expect(l0.argumentsPerJob == 0 && l0.joinContinuedLines)
        #expect(try RunOptions.parse(["--timeout", "1s", "echo"]).timeout == .seconds(1))
        #expect(try RunOptions.parse(["--timeout", "1.4m", "echo"]).timeout == .seconds(84))
        #expect(try RunOptions.parse(["--timeout", "1h30m", "echo"]).timeout == .seconds(5400))
        #expect(try RunOptions.parse(["--timeout", "50%", "echo"]).timeout == .percentOfMedian(50))
        #expect(try RunOptions.parse(["--delay", "0.01m", "echo"]).delay == 0.6)
        #expect(try RunOptions.parse(["--memfree", "1t", "echo"]).minimumFreeMemory == 1_000_000_000_000)
        #expect(try RunOptions.parse(["--memfree", "1T", "echo"]).minimumFreeMemory == 1 << 40)
        #expect(try RunOptions.parse(["--block", "1k", "echo"]).blockSize == 1000)
        #expect(try RunOptions.parse(["--block", "1K", "echo"]).blockSize == 1024)
        #expect(try RunOptions.parse(["--block", "2Mi", "echo"]).blockSize == 2 << 20)
        #expect(throws: RunUsageError("option --delay: 'soon' is not a time like 30, 1.5s, 2m or 1h30m", code: .invalidValue)) { try RunOptions.parse(["--delay", "soon", "echo"]) }
    }

    @Test func dashDSplitsTripleColonValuesAndNewlinesOtherwise() throws {
        // parallel -k -d , echo ::: a,b  →  "a", "b"
        #expect(try RunOptions.parse(["-d", ",", "echo", ":::", "a,b"]).sources == [.arguments(["a", "b"])])
        #expect(try RunOptions.parse(["echo", ":::", "a\nb"]).sources == [.arguments(["a", "b"])])
        #expect(try RunOptions.parse(["-0", "echo", ":::", "a\nb"]).sources == [.arguments(["a\nb"])])
    }

    @Test func everyFileAfterQuadColonPlusIsLinked() throws {
        // parallel -k echo ::::+ <(seq 2) <(seq 2)  →  "1 1", "2 2"
        let options = try RunOptions.parse(["echo", "::::+", "f1", "f2"])
        #expect(options.sources == [.file("f1"), .file("f2")])
        #expect(options.linked == [true, true])
        #expect(JobInputs.combine([["1", "2"], ["1", "2"]], linked: options.linked, linkAll: false) == [["1", "1"], ["2", "2"]])
    }

    @Test func tagstringTakesPrintfEscapes() throws {
        // parallel --tagstring 'x\ty' echo ::: a  →  "x<TAB>y<TAB>a"
        #expect(try RunOptions.parse(["--tagstring", "x\\ty", "echo"]).tagString == "x\ty")
        #expect(RunOptions.unquotePrintf("a\\101\\nb\\0") == "aA\nb\0")
    }

    @Test func dashDashEndsTheOptions() throws {
        let options = try RunOptions.parse(["-k", "--", "-v", ":::", "a"])
        #expect(options.keepOrder && !options.verbose && options.template == ["-v"])
    }

    /// `--rpl` and `--plus` are written into the template as `{= … =}` when it is parsed.
    @Test func shorthandsAreRewrittenWhenParsed() throws {
        let options = try RunOptions.parse(["--rpl", "{x} s/a/b/", "--tagstring", "{x}", "echo", "{x}", "{", "=", ":::", "a"])
        #expect(options.template == ["echo", "{=s/a/b/=}", "{", "="])
        #expect(options.tagString == "{=s/a/b/=}")
        #expect(try RunOptions.parse(["--plus", "echo", "{..}"]).template == ["echo", #"{=s:\.[^/.]*\.[^/.]*$::=}"#])
    }

    @Test func parallelVariableOptionsComeFirstAndItsOtherWordsStartTheCommand() throws {
        // PARALLEL=--tag parallel echo ::: a  →  "a<TAB>a"
        let environment = OptionEnvironment(variables: ["PARALLEL": "--tag -j '3'"], readFile: { _ in nil })
        let options = try RunOptions.parse(["echo", ":::", "a"], environment: environment)
        #expect(options.tag && options.jobs == .count(3))
        // The command line comes after, and wins.
        #expect(try RunOptions.parse(["-j2", "echo"], environment: environment).jobs == .count(2))
        let prefix = OptionEnvironment(variables: ["PARALLEL": "-k nice"], readFile: { _ in nil })
        #expect(try RunOptions.parse(["echo"], environment: prefix).template == ["nice", "echo"])
        #expect(try !RunOptions.parse(["--plain", "echo"], environment: environment).tag)
        let bad = OptionEnvironment(variables: ["PARALLEL": "--frobnicate"], readFile: { _ in nil })
        #expect(throws: RunUsageError("unknown option --frobnicate (in $PARALLEL)", code: .unknownOption)) { try RunOptions.parse(["echo"], environment: bad) }
    }

    @Test func configFilesAndProfilesAreRead() throws {
        let files = ["/home/u/.parallel/config": "# a comment\n--keep-order\n", "/home/u/.parallel/slow": "-j1 --delay 2\n"]
        let environment = OptionEnvironment(variables: ["HOME": "/home/u"], readFile: { files[$0] })
        #expect(try RunOptions.parse(["echo"], environment: environment).keepOrder)
        let profiled = try RunOptions.parse(["-J", "slow", "echo"], environment: environment)
        #expect(!profiled.keepOrder && profiled.jobs == .count(1) && profiled.delay == 2)
        #expect(throws: RunUsageError("option -J: profile nope not readable", code: .cannotOpen)) { try RunOptions.parse(["-J", "nope", "echo"], environment: environment) }
    }

    @Test func shellWordsSplitAsPerlsShellwords() throws {
        #expect(try RunOptions.shellWords(#"--tag  -j 2 'a b' "c \" d" e\ f"#) == ["--tag", "-j", "2", "a b", "c \" d", "e f"])
        #expect(throws: RunUsageError.self) { try RunOptions.shellWords("'open") }
    }

    @Test func requestsStopBeforeTheCommand() throws {
        #expect(try RunOptions.parse(["--help"]).request == .help)
        #expect(try RunOptions.parse(["-kh"]).request == .help)
        #expect(try RunOptions.parse(["--min-version", "20200101"]).request == .minimumVersion(20200101))
        #expect(try RunOptions.parse(["--number-of-cores"]).request == .cores)
    }

    @Test func cpuTopologyCountsSocketsCoresAndThreads() {
        let topology = CPUTopology(cpus: [("0", "0"), ("0", "0"), ("0", "1"), ("1", "0")])
        #expect(topology.count(.sockets) == 2 && topology.count(.cores) == 3 && topology.count(.threads) == 4)
    }

    @Test func everyRowHasADistinctNameAndSupportedRowsAreInTheHelp() {
        var seen: Set<String> = []
        for row in RunOptions.table {
            for name in row.names {
                let key = name.count == 1 ? name : name.lowercased()
                #expect(!seen.contains(key), "\(name) is in two rows")
                seen.insert(key)
            }
            if row.support == .supported, row.help != nil {
                #expect(RunMain.usage.contains(row.synopsis), "\(row.primary) is missing from --help")
            }
        }
    }

    /// The README's option table names only options the table has, says "yes" only of supported
    /// ones and "refused" only of refused ones, and leaves out no supported option.
    @Test func theReadmeOptionTableAgreesWithTheOptionTable() throws {
        let readme = try #require(readTextFile(String(#filePath).split(separator: "/").dropLast(3).map { "/" + $0 }.joined() + "/README.md"))
        let lines = readme.split(separator: "\n", omittingEmptySubsequences: false)
        let start = try #require(lines.firstIndex { $0.hasPrefix("| GNU parallel option |") })
        let parser = OptionParser()
        var named: Set<Int> = []
        for line in lines[(start + 2)...].prefix(while: { $0.hasPrefix("|") }) {
            let refusedRow = line.contains("| refused")
            for token in line.split(separator: "`").enumerated().filter({ $0.offset % 2 == 1 }).map(\.element) where token.hasPrefix("-") {
                let name = String(token.prefix { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" })
                guard name.count >= 2, name != "--" else { continue }  // `-.csv` is a file name
                let row = try #require(parser.row(exactly: name), "README names \(name), which the table does not have")
                #expect((parser.table[row].support == .supported) != refusedRow, "README puts \(name) in the wrong row")
                named.insert(row)
            }
        }
        for (index, row) in parser.table.enumerated() where row.support == .supported && row.help != nil {
            #expect(named.contains(index), "README's option table leaves out \(row.primary)")
        }
    }
}
