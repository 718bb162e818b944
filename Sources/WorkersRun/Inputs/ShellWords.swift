/// `value` as one shell word, exactly as GNU parallel's `Q` writes it (so `--dry-run`, `-v` and
/// the joblog show GNU's text): as it is when every character is in `[-_.+a-zA-Z0-9/]`, else in
/// single quotes, a single quote inside becoming `'"'"'`, and an empty `''` left at either end
/// dropped. Works in sh, bash, dash, zsh and ksh.
public func shellQuote(_ value: String) -> String {
    if value.isEmpty { return "''" }
    let safe = value.unicodeScalars.allSatisfy { scalar in
        switch scalar {
        case "a"..."z", "A"..."Z", "0"..."9", "_", "-", ".", "/", "+": true
        default: false
        }
    }
    if safe { return value }
    var quoted = "'" + value.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\"'\"'") + "'"
    if quoted.hasPrefix("''") { quoted.removeFirst(2) }
    if quoted.hasSuffix("''") { quoted.removeLast(2) }
    return quoted
}

/// The words of a command line that needs no shell to run: plain words and single-quoted strings
/// (what ``shellQuote(_:)`` writes), nothing else. Anything a shell would interpret — `$`,
/// backquotes, redirections, pipes, globs, `;`, `&`, comments, assignments, backslashes, double
/// quotes — returns `nil`, and the job goes to the shell as GNU parallel sends it.
public func simpleCommandWords(_ line: String) -> [String]? {
    var words: [String] = []
    var current = ""
    var inWord = false
    var scalars = line.unicodeScalars.makeIterator()
    while let scalar = scalars.next() {
        switch scalar {
        case " ":
            if inWord { words.append(current); current = ""; inWord = false }
        case "'":
            inWord = true
            var closed = false
            while let inner = scalars.next() {
                if inner == "'" { closed = true; break }
                current.unicodeScalars.append(inner)
            }
            guard closed else { return nil }
        case "a"..."z", "A"..."Z", "0"..."9", "_", "-", ".", "/", ":", "@", "%", "+", ",", "=":
            inWord = true
            current.unicodeScalars.append(scalar)
        case "\"":
            // Only the `'"'"'` that quoting writes for a single quote: a double-quoted `'`.
            guard scalars.next() == "'", scalars.next() == "\"" else { return nil }
            inWord = true
            current.append("'")
        default:
            return nil
        }
    }
    if inWord { words.append(current) }
    guard let first = words.first, !first.contains("="), !shellSpecialWords.contains(first) else { return nil }
    return words
}

/// Words whose meaning in a shell differs from the program of that name on PATH (builtins such
/// as `echo` in dash, keywords), so they always go to the shell.
let shellSpecialWords: Set<String> = [
    "echo", "printf", "test", "[", "kill", "pwd", "time", "type", "command", "exec", "exit", "cd", "export",
    "read", "set", "unset", "source", ".", "eval", "trap", "wait", "ulimit", "umask", "alias", "hash",
    "if", "then", "else", "fi", "for", "while", "until", "do", "done", "case", "esac", "function", "select",
    "return", "shift", "local", "declare", "typeset", "readonly", "let", "getopts",
]
