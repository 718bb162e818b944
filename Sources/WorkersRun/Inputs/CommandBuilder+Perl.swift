/// How the template holds `{= perl =}`: GNU's rules for where an expression starts and ends, and
/// for words the shell split inside one. Pure.
extension CommandBuilder {
    /// `{= code =}` at the start of `text`: the shortest span to the next `=}` that holds no other
    /// `{=` (GNU matches the rightmost `{=`: in `{={==}` only `{==}` is an expression). A code that
    /// starts with a number (`{=2 s/a/b/ =}`) or a `--header` name is for that input alone.
    static func perlToken(at text: Substring, names: [String: Int]) -> (Token, Int)? {
        let body = text.dropFirst(2)
        guard let close = body.firstRange(of: "=}") else { return nil }
        var code = body[..<close.lowerBound]
        guard !code.contains("{=") else { return nil }
        let length = text.distance(from: text.startIndex, to: close.upperBound)
        var position: Int?
        if let name = names.keys.filter({ code.hasPrefix($0) }).max(by: { $0.count < $1.count }) {
            position = names[name]
            code = code.dropFirst(name.count)
        } else {
            let sign = code.first == "-" ? 1 : 0
            let digits = code.dropFirst(sign).prefix { $0.isASCII && $0.isNumber }
            if !digits.isEmpty, let n = Int(digits), n != 0 {
                position = sign == 1 ? -n : n
                code = code.dropFirst(sign + digits.count)
            }
        }
        if position == nil { code = code.drop { $0 == " " } }
        return (.perl(code: String(code), position: position), length)
    }

    /// The `{= … =}` expressions in `text`, in order.
    static func perlCodes(in text: String, replacement: String, names: [String: Int]) -> [String] {
        var codes: [String] = []
        var rest = Substring(text)
        while !rest.isEmpty {
            if let (token, length) = token(at: rest, replacement: replacement, names: names) {
                if case .perl(let code, _) = token { codes.append(code) }
                rest = rest.dropFirst(length)
            } else {
                rest = rest.dropFirst()
            }
        }
        return codes
    }

    /// GNU's `merge_rpl_parts`: a word with a `{=` that no `=}` closes is joined, with spaces,
    /// to the words after it until one closes it (`'{='` `'s/a/b/'` `'=}'` is one word).
    static func mergingPerlWords(_ words: [String]) -> [String] {
        func unclosed(_ word: String) -> Bool {
            var rest = Substring(word)
            var open = false
            while let start = rest.firstRange(of: "{=") {
                open = true
                rest = rest[start.upperBound...]
                guard let close = rest.firstRange(of: "=}") else { return true }
                // A `{=` before the `=}` starts the span the `=}` closes.
                open = false
                rest = rest[close.upperBound...]
            }
            return open
        }
        var merged: [String] = []
        var index = 0
        while index < words.count {
            var word = words[index]
            index += 1
            while unclosed(word), index < words.count {
                word += " " + words[index]
                index += 1
            }
            merged.append(word)
        }
        return merged
    }

    /// `word` split at spaces, but never inside a `{= … =}` (-X repeats whole words).
    static func splitKeepingPerl(_ word: String) -> [String] {
        guard word.contains("{=") else { return word.split(separator: " ", omittingEmptySubsequences: false).map(String.init) }
        var parts: [String] = []
        var current = ""
        var rest = Substring(word)
        while let next = rest.first {
            if next == "{", let (_, length) = perlToken(at: rest, names: [:]) {
                current += rest.prefix(length)
                rest = rest.dropFirst(length)
            } else if next == " " {
                parts.append(current)
                current = ""
                rest = rest.dropFirst()
            } else {
                current.append(next)
                rest = rest.dropFirst()
            }
        }
        parts.append(current)
        return parts
    }
}
