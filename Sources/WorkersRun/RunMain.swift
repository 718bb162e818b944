#if canImport(Glibc)
import Glibc
#endif
import WorkersCore

/// `workers run`'s entry point: GNU parallel's command line in, its exit status out.
public enum RunMain {
    /// The process's arguments after its name, byte for byte: `CommandLine.arguments` would
    /// replace bytes that are not UTF-8 (a Latin-1 file name) with U+FFFD.
    public static func processArguments() -> [String] {
        (1..<Int(CommandLine.argc)).compactMap { CommandLine.unsafeArgv[$0].map { escapedString(cString: $0) } }
    }

    /// GNU makes `$PARALLEL_HOME` when it is set and missing, and warns when it cannot.
    static func prepareParallelHome() {
        guard let home = getenv("PARALLEL_HOME").map({ escapedString(cString: $0) }), !home.isEmpty else { return }
        if makeDirectories(home) != nil {
            writeStandardError("\(programName): Warning: $PARALLEL_HOME (\(home)) does not exist.\n")
        }
    }

    /// Runs `arguments` (the words after `workers run`); returns the exit status.
    public static func main(_ arguments: [String]) -> Int32 {
        // What `-S` starts on each host (not an option of GNU's, and not in --help).
        if arguments == ["--agent"] { return RemoteAgent().serve() }
        if arguments == ["--agent", "newlines"] { return RemoteAgent(newlines: true).serve() }
        prepareParallelHome()
        do {
            let options = try RunOptions.parse(arguments, environment: .process())
            if let request = options.request { return answer(request, options: options) }
            if options.semaphore { return SemaphoreMode.run(options, cpus: cpuCount) }
            let runner = try Runner(options: options, cpus: cpuCount)
            let summary = runner.run()
            if summary.stdoutClosed {
                // As GNU parallel and xargs: the pipeline sees us end by SIGPIPE.
                signal(SIGPIPE, SIG_DFL)
                raise(SIGPIPE)
            }
            return summary.exitStatus
        } catch {
            writeStandardError("\(programName): \(error.description)\n" + (error.suggestsHelp ? "Try '\(programName) --help'.\n" : ""))
            return 255
        }
    }
}
