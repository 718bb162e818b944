import Testing
@testable import WorkersRun

/// The pure parts of `workers run -S`: sshlogins as GNU's man page writes them, the link's frames
/// (in pieces, and malformed), and the heartbeat's clock.
@Suite struct RemoteProtocolTests {
    @Test func sshloginsAsGNUWritesThem() throws {
        let plain = try SSHLogin.parse("server.example.com")
        #expect(plain.destination == "server.example.com" && plain.slots == nil && plain.port == nil && plain.command == nil)
        let counted = try SSHLogin.parse("8/user@host:2222")
        #expect(counted.slots == 8 && counted.destination == "user@host" && counted.port == "2222")
        #expect(counted.login == "user@host:2222" && counted.host == "host")
        let command = try SSHLogin.parse("4/ssh -p 2222 quadserver.example.net")
        #expect(command.slots == 4 && command.command == ["ssh", "-p", "2222"] && command.destination == "quadserver.example.net")
        // `//usr/local/bin/myssh`: the leading slash doubled to tell it from N/.
        let own = try SSHLogin.parse("6//usr/local/bin/myssh -l me hexacpu")
        #expect(own.slots == 6 && own.command == ["/usr/local/bin/myssh", "-l", "me"] && own.destination == "hexacpu")
        #expect(try SSHLogin.parse(":").isLocal)
        #expect(try SSHLogin.parse("16/:").slots == 16)
        // IPv6: a port only in brackets, or after p or #.
        #expect(try SSHLogin.parse("[::1]:2222").port == "2222")
        #expect(try SSHLogin.parse("[::1]:2222").destination == "::1")
        #expect(try SSHLogin.parse("::1p2222").port == "2222")
        #expect(try SSHLogin.parse("fe80::1").port == nil)
    }

    @Test func sshloginListsSplitOnCommasAndNewlines() throws {
        let logins = try SSHLogin.parseList("2/a,b\n:,  c ")
        #expect(logins.map(\.login) == ["a", "b", ":", "c"])
        // A comma in an sshlogin is written \, or ,, (GNU's rule).
        #expect(try SSHLogin.parseList("ssh -o A=1\\,2 h").map(\.login) == ["ssh -o A=1,2 h"])
        #expect(try SSHLogin.parseList("ssh -o A=1,,2 h").map(\.login) == ["ssh -o A=1,2 h"])
        let file = try SSHLogin.parseFile("# hosts\n\n2/a\n  b  \n#c\n")
        #expect(file.map(\.login) == ["a", "b"] && file[0].slots == 2)
    }

    @Test func badSshloginsNameThemselves() {
        #expect(throws: RunUsageError("sshlogin '0/a': the number of jobs before '/' must be at least 1", code: .invalidValue)) { try SSHLogin.parse("0/a") }
        #expect(throws: RunUsageError("sshlogin '@grp/a': hostgroups (@group) are not supported by workers run", code: .unsupportedOption)) { try SSHLogin.parse("@grp/a") }
        #expect(throws: RunUsageError("sshlogin '3/' names no host", code: .invalidValue)) { try SSHLogin.parse("3/") }
    }

    @Test func theTransportIsTheLoginCommandThenTheHostThenOneCommandLine() throws {
        #expect(try SSHLogin.parse("u@h:22").transport(ssh: ["ssh", "-x"], remote: "R") == ["ssh", "-x", "-p", "22", "u@h", "R"])
        #expect(try SSHLogin.parse("myssh -l me h").transport(ssh: ["ssh"], remote: "R") == ["myssh", "-l", "me", "h", "R"])
        #expect(singleQuoted("it's $(x)") == #"'it'\''s $(x)'"#)
    }

    @Test func remoteOptionsParse() throws {
        let options = try RunOptions.parse(["-S", "2/a", "--sshlogin", "b", "--slf", "..", "--ssh", "ssh -x", "--sshdelay", "0.5",
                                            "--trc", "{}.out", "--bf", "base", "--env", "A", "--env", "_", "--lost-after", "3",
                                            "--filter-hosts", "-M", "echo"])
        #expect(options.sshLogins == ["2/a", "b"] && options.sshLoginFiles == [".."] && options.sshCommand == "ssh -x")
        #expect(options.sshDelay == 0.5 && options.transferFiles == ["{}"] && options.returnFiles == ["{}.out"] && options.cleanup)
        #expect(options.baseFiles == ["base"] && options.environmentNames == ["A", "_"] && options.lostAfter == 3 && options.filterHosts)
        #expect(options.remote)
        #expect(throws: RunUsageError("option --nonall needs hosts (-S, --slf or --slurm)", code: .conflictingOptions)) { try RunOptions.parse(["--nonall", "echo"]) }
        #expect(throws: RunUsageError("option --pipe with remote hosts (-S, --slf, --slurm) is not supported by workers run yet", code: .unsupportedOption)) {
            try RunOptions.parse(["-S", "a", "--pipe", "cat"])
        }
        #expect(throws: RunUsageError("option --lost-after: '1' is under 2 s, two heartbeats", code: .invalidValue)) { try RunOptions.parse(["--lost-after", "1", "echo"]) }
    }

    @Test func framesRoundTripInAnyPieces() throws {
        let start = RemoteStart(shell: "/bin/sh", command: "echo 'a b' \u{1}\n$(x)", directory: ".parallel/tmp/x", removeDirectory: true,
                                environment: ["A=1", "B=$(two)"], files: [RemoteFile(path: "a\nb", mode: 0o640, contents: [0, 255, 10])],
                                returns: ["out put"], cleanup: true, words: ["printf", "%s\n", "a b"])
        let frames = [RemoteFrame(.start, job: 7, fields: start.fields), RemoteFrame(.stdout, job: .max, fields: [Array(repeating: 0xFF, count: 70_000)]),
                      RemoteFrame(.heartbeat), RemoteFrame(.exited, job: 7, fields: [Array("256".utf8)])]
        let bytes = frames.flatMap(\.encoded)
        for piece in [1, 3, 4096, bytes.count] {
            var decoder = RemoteFrameDecoder()
            var decoded: [RemoteFrame] = []
            var offset = 0
            while offset < bytes.count {
                decoder.feed(bytes[offset..<min(bytes.count, offset + piece)])
                offset += piece
                while let frame = try decoder.next() { decoded.append(frame) }
            }
            #expect(decoded == frames)
            #expect(decoder.pending == 0)
        }
        #expect(try RemoteStart(frames[0]) == start)
        #expect(frames[3].number(0) == 256)
    }

    @Test func malformedFramesAreProtocolErrorsNeverACrash() {
        // Too short, too long, an unknown kind, a field running past the frame's end.
        let cases: [[UInt8]] = [
            [0, 0, 0, 3, 1, 0, 0],
            [0x7F, 0xFF, 0xFF, 0xFF, 1],
            [0, 0, 0, 9, 99, 0, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 15, 11, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 9, 65, 65],
            [0, 0, 0, 11, 11, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0],
        ]
        for bytes in cases {
            var decoder = RemoteFrameDecoder()
            decoder.feed(bytes)
            #expect(throws: RemoteProtocolError.self) { while try decoder.next() != nil {} }
        }
        // A start frame whose counts do not add up is refused, not read past its fields.
        var start = RemoteStart(shell: "sh", command: "c", files: [RemoteFile(path: "p", mode: 0o600, contents: [])]).fields
        start[6] = Array("5".utf8)
        #expect(throws: RemoteProtocolError.self) { try RemoteStart(RemoteFrame(.start, job: 1, fields: start)) }
        start[6] = Array("1".utf8)
        start[10] = Array("rwx".utf8)
        #expect(throws: RemoteProtocolError.self) { try RemoteStart(RemoteFrame(.start, job: 1, fields: start)) }
    }

    @Test func theHeartbeatClock() {
        var watch = LinkWatch(lostAfter: 3, now: 100)
        #expect(!watch.heartbeatDue(at: 100.5) && watch.heartbeatDue(at: 101))
        #expect(watch.nextWake == 101)
        watch.sent(at: 101)
        #expect(!watch.heartbeatDue(at: 101.9) && watch.nextWake == 102)
        #expect(!watch.isLost(at: 103) && watch.isLost(at: 103.01))
        watch.heard(at: 102.5)
        #expect(!watch.isLost(at: 105) && watch.isLost(at: 105.6))
        // Time that goes backwards (a late reading) does not undo what was heard.
        watch.heard(at: 90)
        #expect(watch.lastHeard == 102.5)
    }
}

@Suite struct SlurmCPUsTests {
    @Test func slurmJobCPUsPerNodeIsReadNodeByNode() {
        #expect(Runner.slurmCPUs("4(x2),2", nodes: 3) == [4, 4, 2])
        #expect(Runner.slurmCPUs("1(x2)", nodes: 2) == [1, 1])
        #expect(Runner.slurmCPUs("8", nodes: 1) == [8])
        #expect(Runner.slurmCPUs("4(x2)", nodes: 3) == nil)
        #expect(Runner.slurmCPUs("4(y2)", nodes: 2) == nil)
        #expect(Runner.slurmCPUs("", nodes: 1) == nil)
    }
}

@Suite struct TerminatedFrameTests {
    @Test func framesOverALineBufferedLinkEndInANewlineThatIsCheckedAndDropped() throws {
        let frames = [RemoteFrame(.ready, fields: [Array("1".utf8)]), RemoteFrame(.stdout, job: 3, fields: [Array("a\nb".utf8)])]
        let bytes: [UInt8] = frames.flatMap { (frame: RemoteFrame) -> [UInt8] in frame.encoded + [10] }
        var decoder = RemoteFrameDecoder(terminator: 10)
        var decoded: [RemoteFrame] = []
        for byte in bytes {
            decoder.feed([byte])
            while let frame = try decoder.next() { decoded.append(frame) }
        }
        #expect(decoded == frames)
        var strict = RemoteFrameDecoder(terminator: 10)
        strict.feed(frames[0].encoded + [UInt8(0)])
        #expect(throws: RemoteProtocolError.self) { try strict.next() }
    }
}
