#if canImport(Glibc)
import Glibc
#endif
import WorkersCore

/// Programs found on PATH and whether the kernel runs them itself, remembered as a shell's hash
/// table remembers them: the runner's and the remote agent's fast path for commands of plain
/// words (a PATH search is a system call a directory: a fifth of a job's time before).
struct ProgramLookup {
    private var paths: [String: String] = [:]
    private var direct: [String: Bool] = [:]

    /// `program`'s path on PATH. Misses are not remembered, so a program that appears during
    /// the run is found.
    mutating func path(_ program: String) -> String? {
        if let path = paths[program] { return path }
        guard let path = executablePath(program) else { return nil }
        if !program.contains("/") { paths[program] = path }
        return path
    }

    /// Whether the kernel runs `path` itself (an ELF binary or a `#!` script). A shell runs any
    /// other executable file as a shell script, so the fast path leaves those to the shell.
    mutating func runsDirectly(_ path: String) -> Bool {
        if let known = direct[path] { return known }
        var head = [UInt8](repeating: 0, count: 4)
        let file = OwnedDescriptor(open(path, O_RDONLY | O_CLOEXEC))
        let count = file.map { file in head.withUnsafeMutableBytes { read(file.raw, $0.baseAddress, 4) } } ?? -1
        // Unreadable (execute-only): let the exec decide.
        let result = count < 0 || head.starts(with: [0x7F, 0x45, 0x4C, 0x46]) || head.starts(with: [0x23, 0x21])
        direct[path] = result
        return result
    }
}
