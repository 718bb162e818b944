#if canImport(Glibc)
import Glibc
#endif

/// The forms GNU parallel's option values take: job counts, sizes, times, halt rules, signal
/// sequences and escapes. Pure.
extension RunOptions {
    /// `--term-seq`: `SIGNAL,ms,SIGNAL,ms,…` (names with or without `SIG`, or numbers).
    static func parseTerminateSequence(_ text: String) throws(RunUsageError) -> [TerminateStep] {
        let names: [String: Int32] = [
            "HUP": SIGHUP, "INT": SIGINT, "QUIT": SIGQUIT, "KILL": SIGKILL, "USR1": SIGUSR1, "USR2": SIGUSR2,
            "TERM": SIGTERM, "ALRM": SIGALRM, "CONT": SIGCONT, "STOP": SIGSTOP, "TSTP": SIGTSTP,
        ]
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        var steps: [TerminateStep] = []
        var index = 0
        while index < parts.count {
            let name = parts[index].uppercased().hasPrefix("SIG") ? String(parts[index].uppercased().dropFirst(3)) : parts[index].uppercased()
            guard let signal = names[name] ?? Int32(name).flatMap({ (1..<65).contains($0) ? $0 : nil }) else {
                throw RunUsageError("option --term-seq: '\(parts[index])' is not a signal", code: .invalidValue)
            }
            var wait = 0.0
            if index + 1 < parts.count {
                guard let milliseconds = Double(parts[index + 1]), milliseconds >= 0 else {
                    throw RunUsageError("option --term-seq: '\(parts[index + 1])' is not a number of milliseconds", code: .invalidValue)
                }
                wait = milliseconds / 1000
            }
            steps.append(TerminateStep(signal: signal, wait: wait))
            index += 2
        }
        guard !steps.isEmpty else { throw RunUsageError("option --term-seq needs at least one signal", code: .missingValue) }
        return steps
    }

    static func parseJobs(_ text: String, name: String) throws(RunUsageError) -> Jobs {
        if text.hasSuffix("%"), let percent = Double(text.dropLast()), percent > 0 { return .percent(percent) }
        if text.hasPrefix("+"), let n = Int(text.dropFirst()), n >= 0 { return .plus(n) }
        if text.hasPrefix("-"), let n = Int(text.dropFirst()), n >= 0 { return .minus(n) }
        if let n = Int(text), n >= 0 { return n == 0 ? .unlimited : .count(n) }
        // GNU: a file that holds one of these.
        if fileExists(text) { return .file(text) }
        throw RunUsageError("option \(name): '\(text)' is not N, N%, +N, -N, 0 or a file holding one", code: .invalidValue)
    }

    /// A size with GNU's prefixes (`multiply_binary_prefix`): `K M G T P` and `Ki`…`Pi` (either
    /// case) are powers of 1024, lowercase `k m g t p` powers of 1000; a bare number is bytes.
    static func parseSize(_ text: String, name: String, allowNegative: Bool = false) throws(RunUsageError) -> Int {
        let binary: [Character: Double] = ["K": 0x1p10, "M": 0x1p20, "G": 0x1p30, "T": 0x1p40, "P": 0x1p50]
        let decimal: [Character: Double] = ["k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12, "p": 1e15]
        var digits = Substring(text)
        var factor = 1.0
        if digits.count >= 2, digits.last == "i" || digits.last == "I", let unit = digits.dropLast().last,
           let value = binary[Character(unit.uppercased())] {
            factor = value
            digits = digits.dropLast(2)
        } else if let unit = digits.last, let value = binary[unit] ?? decimal[unit] {
            factor = value
            digits = digits.dropLast()
        }
        guard let number = Double(digits), number.isFinite, allowNegative ? number != 0 : number > 0,
              abs(number * factor) < Double(Int.max / 2) else {
            throw RunUsageError("option \(name): '\(text)' is not a size like 1M, 512K or 10k", code: .invalidValue)
        }
        let bytes = Int(number * factor)
        return bytes == 0 ? (number < 0 ? -1 : 1) : bytes
    }

    /// Seconds with GNU's time units (`multiply_time_units`): `30`, `1.5s`, `1.4m`, `2h`, `1d`,
    /// or several, `1h30m`.
    static func parseDuration(_ text: String, name: String) throws(RunUsageError) -> Double {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
        var total = 0.0
        var number = ""
        var sawAny = false
        for character in text {
            if let unit = units[Character(character.lowercased())] {
                guard let value = Double(number) else { throw RunUsageError("option \(name): '\(text)' is not a time like 30, 1.5s, 2m or 1h30m", code: .invalidValue) }
                total += value * unit
                number = ""
                sawAny = true
            } else {
                number.append(character)
            }
        }
        if !number.isEmpty || !sawAny {
            guard let value = Double(number) else { throw RunUsageError("option \(name): '\(text)' is not a time like 30, 1.5s, 2m or 1h30m", code: .invalidValue) }
            total += value
        }
        guard total.isFinite, total >= 0 else { throw RunUsageError("option \(name): '\(text)' is not a time like 30, 1.5s, 2m or 1h30m", code: .invalidValue) }
        return total
    }

    /// `--timeout`: a time (GNU's units) or N% of the median run time.
    static func parseTimeout(_ text: String) throws(RunUsageError) -> Timeout {
        if text.hasSuffix("%"), let percent = Double(text.dropLast()), percent > 0 { return .percentOfMedian(percent) }
        let seconds = try parseDuration(text, name: "--timeout")
        guard seconds > 0 else { throw RunUsageError("option --timeout: '\(text)' is not a time above 0 or N%", code: .invalidValue) }
        return .seconds(seconds)
    }

    /// `now|soon,fail|success|done=N|N%`, or the old 0, 1, 2, -1, -2.
    static func parseHalt(_ text: String) throws(RunUsageError) -> Halt? {
        switch text {
        case "0", "never": return nil
        case "1": return Halt(when: .soon, why: .fail, threshold: .count(1))
        case "2": return Halt(when: .now, why: .fail, threshold: .count(1))
        case "-1": return Halt(when: .soon, why: .success, threshold: .count(1))
        case "-2": return Halt(when: .now, why: .success, threshold: .count(1))
        default: break
        }
        // `--halt 5%` is `soon,fail=5%`.
        if text.hasSuffix("%"), let percent = Double(text.dropLast()), percent > 0, percent <= 100 {
            return Halt(when: .soon, why: .fail, threshold: .percent(percent))
        }
        // GNU's messages, step by step: when, then why, then how many.
        let parts = text.split(separator: ",", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard let when = Halt.When(rawValue: parts[0]) else { throw .gnu("--halt must have 'never', 'soon', or 'now'.", code: .invalidValue) }
        let condition = parts.count == 2 ? parts[1].split(separator: "=", maxSplits: 1).map(String.init) : []
        let why: Halt.Why
        switch condition.first {
        case "fail": why = .fail
        case "success": why = .success
        case "done": why = .done
        default: throw .gnu("--halt \(parts[0]) must be followed by ,success or ,fail.", code: .invalidValue)
        }
        guard condition.count == 2 else { throw .gnu("--halt \(parts[0]),\(condition[0]) must be followed by ,number or ,percent%.", code: .invalidValue) }
        let amount = condition[1]
        if amount.hasSuffix("%"), let percent = Double(amount.dropLast()), percent > 0, percent <= 100 {
            return Halt(when: when, why: why, threshold: .percent(percent))
        }
        guard let count = Int(amount), count >= 1 else { throw RunUsageError("option --halt: '\(amount)' is not N or N%", code: .invalidValue) }
        return Halt(when: when, why: why, threshold: .count(count))
    }

    /// Backslash escapes (`\n`, `\t`, `\0`, `\r`, `\\`) anywhere in `-d`, `--recend` and
    /// `--recstart`, as GNU reads them (`--recend 'y\n'` is `y` and a newline).
    static func unescape(_ text: String) -> String {
        guard text.contains("\\") else { return text }
        var result = ""
        var escaped = false
        for character in text {
            if escaped {
                switch character {
                case "n": result.append("\n")
                case "t": result.append("\t")
                case "0": result.append("\0")
                case "r": result.append("\r")
                case "\\": result.append("\\")
                default: result.append("\\"); result.append(character)
                }
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else {
                result.append(character)
            }
        }
        if escaped { result.append("\\") }
        return result
    }

    /// `--tagstring`'s escapes, as GNU's `unquote_printf`: `\t`, `\n`, `\r` and octal `\NNN`/`\N`.
    static func unquotePrintf(_ text: String) -> String {
        guard text.contains("\\") else { return text }
        var bytes: [UInt8] = []
        let source = Array(text.utf8)
        var index = 0
        while index < source.count {
            let byte = source[index]
            guard byte == UInt8(ascii: "\\"), index + 1 < source.count else { bytes.append(byte); index += 1; continue }
            let next = source[index + 1]
            switch next {
            case UInt8(ascii: "t"): bytes.append(9); index += 2
            case UInt8(ascii: "n"): bytes.append(10); index += 2
            case UInt8(ascii: "r"): bytes.append(13); index += 2
            case UInt8(ascii: "0")...UInt8(ascii: "7"):
                var digits = 0, value = 0
                while digits < 3, index + 1 + digits < source.count, (UInt8(ascii: "0")...UInt8(ascii: "7")).contains(source[index + 1 + digits]) {
                    value = value * 8 + Int(source[index + 1 + digits] - UInt8(ascii: "0"))
                    digits += 1
                }
                // GNU takes three digits or one; two stay one digit and a literal.
                if digits == 2 { digits = 1; value = Int(next - UInt8(ascii: "0")) }
                bytes.append(UInt8(truncatingIfNeeded: value)); index += 1 + digits
            default: bytes.append(byte); index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A line split into words as the shell would (Perl's `Text::ParseWords::shellwords`, which
    /// GNU uses for `$PARALLEL` and profile files): blanks separate words; '…' keeps everything,
    /// "…" and a backslash keep the next character.
    static func shellWords(_ line: String) throws(RunUsageError) -> [String] {
        var words: [String] = []
        var word = ""
        var inWord = false
        var quote: Character?
        var escaped = false
        for character in line {
            if escaped { word.append(character); escaped = false; inWord = true; continue }
            if let open = quote {
                if character == open { quote = nil } else if character == "\\", open == "\"" { escaped = true } else { word.append(character) }
                continue
            }
            switch character {
            case " ", "\t", "\n", "\r":
                if inWord { words.append(word); word = ""; inWord = false }
            case "'", "\"": quote = character; inWord = true
            case "\\": escaped = true; inWord = true
            default: word.append(character); inWord = true
            }
        }
        guard quote == nil else { throw RunUsageError("unmatched quote in '\(line)'", code: .invalidValue) }
        if escaped { word.append("\\") }
        if inWord { words.append(word) }
        return words
    }
}
