#if canImport(Glibc)
import Glibc
#endif
import WorkersCore

extension RunMain {
    /// The GNU parallel release whose behaviour `workers run` follows.
    public static let gnuVersion = 20221122

    /// The help text, its option lines made from ``RunOptions/table``.
    public static let usage: String = {
        var text = """
            USAGE: workers run [OPTIONS] [COMMAND [ARG…]] [::: ARGS… | :::: FILES… | :::+ ARGS… | ::::+ FILES…]

            Runs COMMAND once per input, many at once — GNU parallel's behaviour, compiled. Inputs come
            from ::: (several give the cartesian product), :::: or -a files, or stdin (one per line).
            The command is shell code; each substituted input is shell-quoted. With no replacement
            string, {} is appended. With no command, each input line is a command. Options are read
            as GNU reads them: bundled (-kj2), abbreviated (--line-buf), after those in the config
            files (~/.parallel/config, or -J PROFILE) and in $PARALLEL. `workers-run` is the same
            runner as a small executable of its own, which starts faster.

            Replacement strings: {} {.} {/} {//} {/.} {#} {%} and {n} {n.} {n/} {n//} {n/.}.

            """
        let rows = RunOptions.table.filter { $0.support == .supported && $0.help != nil }
        for section in OptionSpec.Section.allCases {
            let lines = rows.filter { $0.section == section }
            guard !lines.isEmpty else { continue }
            text += "\n\(section.rawValue):\n"
            for row in lines { text += wrapped(synopsis: row.synopsis, help: row.help!) }
        }
        let refused = RunOptions.table.filter { $0.support != .supported }.map(\.primary)
        text += "\nREFUSED (GNU's, named and refused with status 255):\n"
        text += wrapped(synopsis: "", help: refused.joined(separator: " "))
        text += """

            EXIT STATUS: 0 if all jobs succeeded; the number of failed jobs up to 100; 101 above; 255 for
            a bad command line; with --halt now,fail=1 the failing job's status; 130/143 on SIGINT/SIGTERM.
            """
        return text
    }()

    /// One option's lines: its synopsis in a column of 28, its help wrapped at 100.
    private static func wrapped(synopsis: String, help: String) -> String {
        let indent = String(repeating: " ", count: 30)
        var lines: [String] = []
        var line = "  " + synopsis
        if line.count > 29 { lines.append(line); line = indent } else { line += String(repeating: " ", count: 30 - line.count) }
        var empty = true
        for word in help.split(separator: " ") {
            if !empty, line.count + 1 + word.count > 100 { lines.append(line); line = indent; empty = true }
            line += (empty ? "" : " ") + word
            empty = false
        }
        lines.append(line)
        return lines.joined(separator: "\n") + "\n"
    }

    /// Answers `--help`, `--version` and the options that print a fact; returns the status.
    static func answer(_ request: RunOptions.Request, options: RunOptions) -> Int32 {
        switch request {
        case .help:
            writeFully(STDOUT_FILENO, Array((usage + "\n").utf8))
        case .version:
            writeFully(STDOUT_FILENO, Array("workers run (swift-workers), following GNU parallel \(gnuVersion)\n".utf8))
        case .minimumVersion(let wanted):
            writeFully(STDOUT_FILENO, Array("\(gnuVersion)\n".utf8))
            return wanted <= gnuVersion ? 0 : 255
        case .maximumLineLength:
            writeFully(STDOUT_FILENO, Array("\(CommandLineLimit.allowed)\n".utf8))
        case .sockets, .cores, .threads:
            writeFully(STDOUT_FILENO, Array("\(CPUTopology.read().count(request))\n".utf8))
        }
        return 0
    }
}

/// The machine's sockets, cores and hardware threads, from `/sys/devices/system/cpu`.
struct CPUTopology {
    /// (package id, core id) of each online CPU.
    var cpus: [(package: String, core: String)]

    static func read(root: String = "/sys/devices/system/cpu") -> CPUTopology {
        var cpus: [(String, String)] = []
        var index = 0
        while let core = readTextFile("\(root)/cpu\(index)/topology/core_id") {
            let package = readTextFile("\(root)/cpu\(index)/topology/physical_package_id") ?? "0"
            let online = readTextFile("\(root)/cpu\(index)/online").map { $0.hasPrefix("1") } ?? true
            if online { cpus.append((trimmed(package, of: [" ", "\n"]), trimmed(core, of: [" ", "\n"]))) }
            index += 1
        }
        return CPUTopology(cpus: cpus)
    }

    func count(_ request: RunOptions.Request) -> Int {
        let threads = max(cpus.count, 1)
        switch request {
        case .sockets: return max(Set(cpus.map(\.package)).count, 1)
        case .cores: return max(Set(cpus.map { $0.package + "/" + $0.core }).count, 1)
        default: return threads
        }
    }
}
