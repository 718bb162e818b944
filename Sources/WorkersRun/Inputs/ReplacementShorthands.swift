/// GNU parallel's `--rpl` and `--plus`: replacement strings defined by a Perl expression, written
/// into the template as `{= … =}` before the run, as GNU does. Pure.
///
/// A shorthand is `TAG CODE` (`--rpl '{..} s:\.[^/.]*\.[^/.]*$::'`). Its tag may hold one Perl
/// regex group, `{%(.+?)}`, whose captures the code reads as `$$1`, `$$2`: `{%.gz}` then runs the
/// code with `$$1` = `.gz`. A tag that starts with `{` also has a positional form (`{2..}`: for the
/// second input alone). Longer tags are replaced first, and never inside an existing `{= … =}`.
struct ReplacementShorthands {
    struct Shorthand {
        var tag: String
        var code: String
    }

    private(set) var shorthands: [Shorthand] = []
    /// Each shorthand's regexes (plain, positional), compiled once.
    private var compiled: [(plain: Regex<AnyRegexOutput>, positional: Regex<AnyRegexOutput>?)] = []

    /// The shorthands of `--plus` (when `plus`) and then `rpl` (each `TAG CODE`; a later one
    /// with the same tag wins, as in GNU).
    init(rpl: [String], plus: Bool) throws(RunUsageError) {
        var table: [String: String] = plus ? Dictionary(uniqueKeysWithValues: Self.plus.map { ($0.tag, $0.code) }) : [:]
        for definition in rpl {
            // GNU: the tag, a blank, the code; a tag alone stands for the input as it is.
            let parts = definition.split(maxSplits: 1, omittingEmptySubsequences: false) { $0 == " " || $0 == "\t" || $0 == "\n" }
            guard !parts[0].isEmpty else {
                throw RunUsageError("option --rpl: '\(definition)' is not a tag and a Perl expression, like '{..} s:\\.[^.]+$::'", code: .invalidValue)
            }
            table[String(parts[0])] = parts.count == 2 ? String(parts[1]) : ""
        }
        shorthands = table.map { Shorthand(tag: $0.key, code: $0.value) }
            .sorted { $0.tag.count != $1.tag.count ? $0.tag.count > $1.tag.count : $0.tag < $1.tag }
        for shorthand in shorthands { compiled.append(try Self.patterns(of: shorthand)) }
    }

    var isEmpty: Bool { shorthands.isEmpty }

    /// `text` with every shorthand replaced by its `{= … =}`.
    func rewrite(_ text: String) -> String {
        var text = text
        for (shorthand, (plain, positional)) in zip(shorthands, compiled) {
            text = Self.replace(plain, in: text) { match in
                "{=" + Self.code(shorthand.code, groups: match.dropFirst()) + "=}"
            }
            if let positional {
                text = Self.replace(positional, in: text) { match in
                    "{=" + (match[1] ?? "") + Self.code(shorthand.code, groups: match.dropFirst(2)) + "=}"
                }
            }
        }
        return text
    }

    /// The code with `$$N` read from the tag's captures, which are set first (quoted for Perl).
    private static func code(_ code: String, groups: ArraySlice<String?>) -> String {
        var setup = ""
        var body = code
        for (offset, group) in groups.enumerated() {
            guard let group else { break }
            let name = "$_pAr_gRp\(offset + 1)"
            setup += "\(name) = \"\(perlQuote(group))\";"
            body = body.replacing("$$\(offset + 1)", with: name)
        }
        return setup + body
    }

    /// GNU's `perl_quote_scalar`: `\`, `"`, `$` and `@` escaped.
    static func perlQuote(_ text: String) -> String {
        var quoted = ""
        for character in text {
            if "\\\"$@".contains(character) { quoted.append("\\") }
            quoted.append(character)
        }
        return quoted
    }

    /// The tag as a regex, and (for a tag that starts with `{`) its positional form `{N…}`.
    private static func patterns(of shorthand: Shorthand) throws(RunUsageError) -> (Regex<AnyRegexOutput>, Regex<AnyRegexOutput>?) {
        // GNU: `^([^(]*)(\(.*\))?([^)]*)$` splits the tag into prefix, group and postfix.
        let tag = shorthand.tag
        let open = tag.firstIndex(of: "(")
        let close = tag.lastIndex(of: ")")
        let prefix: Substring, group: Substring, postfix: Substring
        if let open, let close, open < close {
            (prefix, group, postfix) = (tag[..<open], tag[open...close], tag[tag.index(after: close)...])
        } else {
            (prefix, group, postfix) = (Substring(tag), "", "")
        }
        do {
            let plain = try Regex(regexQuote(prefix) + group + regexQuote(postfix))
            guard prefix.first == "{" else { return (plain, nil) }
            return (plain, try Regex("\\{(-?[0-9]+)\\s*" + regexQuote(prefix.dropFirst()) + group + regexQuote(postfix)))
        } catch {
            throw RunUsageError("option --rpl: '\(tag)' is not a regular expression this build can read", code: .invalidValue)
        }
    }

    private static func regexQuote(_ text: Substring) -> String {
        var quoted = ""
        for character in text {
            if character.isASCII, !(character.isLetter || character.isNumber || character == "_" || character == " ") { quoted.append("\\") }
            quoted.append(character)
        }
        return quoted
    }

    /// Replaces every match of `regex` outside the `{= … =}` spans of `text` (including those
    /// made by earlier replacements) with `make(captures)`; captures[0] is the whole match.
    private static func replace(_ regex: Regex<AnyRegexOutput>, in text: String, make: ([String?]) -> String) -> String {
        var out = ""
        var rest = Substring(text)
        while !rest.isEmpty {
            // The plain run up to the next expression, which is copied as it is.
            let spanStart = nextSpan(in: rest)
            var plain = rest[..<(spanStart?.lowerBound ?? rest.endIndex)]
            while let match = plain.firstMatch(of: regex) {
                out += plain[..<match.range.lowerBound]
                out += make(match.output.map { $0.substring.map(String.init) })
                plain = plain[match.range.upperBound...]
                if match.range.isEmpty { break }
            }
            out += plain
            guard let span = spanStart else { break }
            out += rest[span]
            rest = rest[span.upperBound...]
        }
        return out
    }

    /// The first `{= … =}` in `text`, as the template reads it.
    private static func nextSpan(in text: Substring) -> Range<Substring.Index>? {
        var index = text.startIndex
        while let start = text[index...].firstRange(of: "{=") {
            if let (_, length) = CommandBuilder.perlToken(at: text[start.lowerBound...], names: [:]) {
                return start.lowerBound..<text.index(start.lowerBound, offsetBy: length)
            }
            index = text.index(after: start.lowerBound)
        }
        return nil
    }

    /// `--plus`, as GNU 20221122 defines it: more of a path (`{..}`, `{+.}`), bash's parameter
    /// expansions (`{%.gz}`, `{#pre}`, `{/a/b}`, `{:2:3}`, `{^a}`), `{##}` (the number of jobs),
    /// `{0#}` and `{0%}` (zero-padded), `{choose_k}` and `{uniq}` (skip some combinations), and the
    /// job's slot and remote host as shell variables.
    static let plus: [Shorthand] = [
        ("{+/}", #"s:/[^/]*$:: || s:.*$::"#),
        ("{+.}", #"s:.*\.:: || s:.*$::"#),
        ("{+..}", #"s:.*\.([^/.]*\.[^/.]*)$:$1: || s:.*$::"#),
        ("{+...}", #"s:.*\.([^/.]*\.[^/.]*\.[^/.]*)$:$1: || s:.*$::"#),
        ("{..}", #"s:\.[^/.]*\.[^/.]*$::"#),
        ("{...}", #"s:\.[^/.]*\.[^/.]*\.[^/.]*$::"#),
        ("{/..}", #"s:.*/::; s:\.[^/.]*\.[^/.]*$::"#),
        ("{/...}", #"s:.*/::; s:\.[^/.]*\.[^/.]*\.[^/.]*$::"#),
        ("{choose_k}", #"for $t (2..$#arg) { if ($arg[$t-1] ge $arg[$t]) { skip() } }"#),
        ("{uniq}", #"if (::uniq(@arg) != @arg) { skip(); }"#),
        ("{##}", #"1 $_=total_jobs()"#),
        ("{0%}", #"1 $f=1+int((log($Global::max_jobs_running||1)/log(10))); $_=sprintf("%0${f}d",slot())"#),
        ("{0#}", #"1 $f=1+int((log(total_jobs())/log(10))); $_=sprintf("%0${f}d",seq())"#),
        ("{:-([^}]+?)}", #"$_ ||= $$1"#),
        (#"{:(\d+?)}"#, #"substr($_,0,$$1) = """#),
        (#"{:(\d+?):(\d+?)}"#, #"$_ = substr($_,$$1,$$2);"#),
        ("{#([^#}][^}]*?)}", #"$nongreedy=::make_regexp_ungreedy($$1);s/^$nongreedy(.*)/$1/;"#),
        ("{##([^#}][^}]*?)}", #"s/^$$1//;"#),
        ("{%([^}]+?)}", #"$nongreedy=::make_regexp_ungreedy($$1);s/(.*)$nongreedy$/$1/;"#),
        ("{%%([^}]+?)}", #"s/$$1$//;"#),
        ("{/([^#%}/]+?)/([^}]*?)}", #"s/$$1/$$2/;"#),
        ("{/#([^}]+?)/([^}]*?)}", #"s/^$$1/$$2/g;"#),
        ("{/%([^}]+?)/([^}]*?)}", #"s/$$1$/$$2/g;"#),
        ("{//([^}]+?)/([^}]*?)}", #"s/$$1/$$2/g;"#),
        ("{^([^}]+?)}", #"s/^($$1)/uc($1)/e;"#),
        ("{^^([^}]+?)}", #"s/($$1)/uc($1)/eg;"#),
        ("{,([^}]+?)}", #"s/^($$1)/lc($1)/e;"#),
        ("{,,([^}]+?)}", #"s/($$1)/lc($1)/eg;"#),
        ("{slot}", #"1 $_="\${PARALLEL_JOBSLOT}";uq()"#),
        ("{host}", #"1 $_="\${PARALLEL_SSHHOST}";uq()"#),
        ("{sshlogin}", #"1 $_="\${PARALLEL_SSHLOGIN}";uq()"#),
        ("{hgrp}", #"1 $_="\${PARALLEL_HOSTGROUPS}";uq()"#),
        ("{agrp}", #"1 $_="\${PARALLEL_ARGHOSTGROUPS}";uq()"#),
    ].map { Shorthand(tag: $0.0, code: $0.1) }
}
