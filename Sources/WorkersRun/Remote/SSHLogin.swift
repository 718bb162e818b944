#if canImport(Glibc)
import Glibc
#endif
import WorkersCore

/// One host to run jobs on, as GNU's `--sshlogin` writes it: `[N/]sshlogin`, where sshlogin is
/// `[user@]host[:port]`, `[ssh command and options] [user@]host` (the host last), or `:` for
/// this machine. Pure.
struct SSHLogin: Equatable, Hashable {
    /// The sshlogin without its `N/`: the joblog's Host column and `$PARALLEL_SSHLOGIN`.
    var login: String
    /// `N/`: jobs at once on it (else `-j` applied to its CPU count).
    var slots: Int?
    /// The login command's words, when the sshlogin has its own (`ssh -p 2222 host`).
    var command: [String]?
    /// `[user@]host`, the last word.
    var destination: String
    /// `:port`.
    var port: String?
    /// A Slurm node (`--slurm`): reached by `srun`, not ssh.
    var slurm = false
    /// Its CPUs when known before its agent says (`SLURM_CPUS_ON_NODE`).
    var cpus: Int?

    /// `:`: this machine, no ssh.
    var isLocal: Bool { login == ":" }
    /// The host alone (`$PARALLEL_SSHHOST`).
    var host: String {
        guard let at = destination.lastIndex(of: "@") else { return destination }
        return String(destination[destination.index(after: at)...])
    }

    /// The sshlogins in `text` (separated by commas or newlines; `\,` and `,,` are a comma).
    ///
    /// - Throws: ``RunUsageError`` for an empty one, a bad `N/` or a hostgroup.
    static func parseList(_ text: String) throws(RunUsageError) -> [SSHLogin] {
        var items: [String] = []
        var current = ""
        var characters = Array(text)[...]
        while let character = characters.popFirst() {
            if character == "\\", characters.first == "," {
                current.append(characters.removeFirst())
            } else if character == ",", characters.first == "," {
                current.append(characters.removeFirst())
            } else if character == "," || character == "\n" {
                items.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        items.append(current)
        return try items.map { trimmed($0, of: [" ", "\t", "\r"]) }.filter { !$0.isEmpty }.map(parse)
    }

    /// One sshlogin.
    static func parse(_ text: String) throws(RunUsageError) -> SSHLogin {
        var rest = Substring(text)
        if rest.hasPrefix("@") {
            throw RunUsageError("sshlogin '\(text)': hostgroups (@group) are not supported by workers run", code: .unsupportedOption)
        }
        var slots: Int?
        if let slash = rest.firstIndex(of: "/"), slash != rest.startIndex, rest[..<slash].allSatisfy(\.isNumber) {
            guard let count = Int(rest[..<slash]), count > 0 else {
                throw RunUsageError("sshlogin '\(text)': the number of jobs before '/' must be at least 1", code: .invalidValue)
            }
            slots = count
            rest = rest[rest.index(after: slash)...]
        }
        let login = String(rest)
        guard !login.isEmpty else { throw RunUsageError("sshlogin '\(text)' names no host", code: .invalidValue) }
        if login == ":" { return SSHLogin(login: login, slots: slots, command: nil, destination: ":", port: nil) }
        let words = login.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        if words.count > 1 {
            // `ssh -p 2222 host`, `//usr/local/bin/myssh host`: a command, the host last.
            var command = Array(words.dropLast())
            if command[0].hasPrefix("//") { command[0].removeFirst() }
            return SSHLogin(login: login, slots: slots, command: command, destination: words.last!, port: nil)
        }
        // [user@]host:port, [user@][v6]:port, and v6 with p or # before the port.
        var destination = login
        var port: String?
        if let colon = destination.lastIndex(of: ":") {
            let after = destination[destination.index(after: colon)...]
            let before = destination[..<colon]
            let bracketed = before.hasSuffix("]")
            if !after.isEmpty, after.allSatisfy(\.isNumber), bracketed || !before.contains(":") {
                port = String(after)
                destination = String(before)
                if bracketed, let open = destination.lastIndex(of: "[") {
                    destination.remove(at: destination.index(before: destination.endIndex))
                    destination.remove(at: open)
                }
            }
        }
        if port == nil, destination.filter({ $0 == ":" }).count > 1, let mark = destination.lastIndex(where: { $0 == "p" || $0 == "#" }) {
            let after = destination[destination.index(after: mark)...]
            if !after.isEmpty, after.allSatisfy(\.isNumber) {
                port = String(after)
                destination = String(destination[..<mark])
            }
        }
        return SSHLogin(login: login, slots: slots, command: nil, destination: destination, port: port)
    }

    /// The sshlogins of an `--slf` file's text: a line each; empty lines and `#` comments skipped.
    static func parseFile(_ text: String) throws(RunUsageError) -> [SSHLogin] {
        try text.split(separator: "\n").map { trimmed($0, of: [" ", "\t", "\r"]) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
            .map(parse)
    }

    /// Where an `--slf` name is: `..` ~/.parallel/sshloginfile, `.` /etc/parallel/sshloginfile,
    /// else the name from here, else in ~/.parallel (GNU's order).
    static func filePath(_ name: String, home: String) -> String {
        switch name {
        case "..": return home + "/.parallel/sshloginfile"
        case ".": return "/etc/parallel/sshloginfile"
        default:
            if name.hasPrefix("/") || fileExists(name) { return name }
            let inParallel = home + "/.parallel/" + name
            return fileExists(inParallel) ? inParallel : name
        }
    }

    /// The argv that starts the agent on this host: the login command (`--ssh`, `$PARALLEL_SSH`,
    /// or the sshlogin's own), `-p port`, the destination, and `remote` (one shell command line
    /// for the far side's login shell).
    func transport(ssh: [String], remote: String) -> [String] {
        if let command { return command + [destination, remote] }
        return ssh + (port.map { ["-p", $0] } ?? []) + [destination, remote]
    }
}

/// `text` quoted for a POSIX shell: in single quotes, each `'` as `'\''`.
func singleQuoted(_ text: String) -> String {
    "'" + text.replacing("'", with: "'\\''") + "'"
}
