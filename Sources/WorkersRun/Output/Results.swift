#if canImport(Glibc)
import Glibc
#endif
import WorkersCore

/// `--results NAME`: each job's output saved instead of printed, in GNU parallel's four layouts.
///
/// - NAME without replacement strings: a tree, `NAME/1/<value>/2/<value>/{seq,stdout,stderr}`,
///   one level pair per input (`\`, tab, NUL and `/` in a value written `\\`, `\t`, `\0`, `\_`).
/// - NAME with replacement strings, ending in `/` once replaced: that directory's `seq`, `stdout`
///   and `stderr`; not ending in `/`: the file itself for stdout, with `.err` and `.seq` beside it.
/// - NAME ending in `.csv` or `.tsv`: one table, a row per job (`-.csv`/`-.tsv`: on stdout).
/// - NAME ending in `.json`: one JSON object per line per job (`-.json`: on stdout).
///
/// A job's files are written when it ends, stdout last, so under `--resume` a job whose stdout
/// exists is one that finished (GNU creates the files when a job starts, so a killed run leaves
/// files for jobs that never ended, which its `--resume` then skips).
final class ResultsWriter {
    enum Layout: Equatable {
        case tree(root: String)
        case template(String)
        case table(separator: UInt8)
        case json
    }

    /// What a row or a `seq` file needs to know about a finished job.
    struct Record {
        var sequence: Int
        var arguments: [String]
        var command: String
        var startEpoch: Double
        var runtime: Double
        var sent: Int
        var exit: Int32
        var signal: Int32
    }

    let layout: Layout
    private let builder: CommandBuilder
    private let replacement: String
    /// Values per input record, to number the tree's levels (`1/a/2/b`, and `1/a/1/b` for `-N2`);
    /// with `--colsep` each column counts, so it is worked out per job from `recordsPerJob`.
    private let valuesPerRecord: Int
    private let columns: Bool
    private let recordsPerJob: Int
    /// The table or JSON file (a copy of stdout for `-.csv`, `-.tsv`, `-.json`).
    private var table: OwnedDescriptor?
    private var headerWritten = false

    /// Opens the table or JSON file now, so a bad path is an error before any job runs.
    /// `--header`: the levels are named by the columns (or sources) instead of numbered.
    private let headerNames: [String]

    init(name: String, options: RunOptions, builder: CommandBuilder, headerNames: [String] = []) throws(RunUsageError) {
        self.builder = builder
        self.headerNames = headerNames
        replacement = options.replacement
        valuesPerRecord = max(1, options.sources.count)
        columns = options.columnSeparator != nil
        recordsPerJob = max(1, options.argumentsPerJob ?? 1)
        let lower = name.lowercased()
        if lower.hasSuffix(".csv") || lower.hasSuffix(".tsv") || lower.hasSuffix(".json") {
            layout = lower.hasSuffix(".json") ? .json : .table(separator: lower.hasSuffix(".csv") ? UInt8(ascii: ",") : UInt8(ascii: "\t"))
            let toStdout = name == "-.csv" || name == "-.tsv" || name == "-.json"
            table = OwnedDescriptor(toStdout ? fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3) : openFile(name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o666))
            guard table != nil else { throw RunUsageError("option --results: cannot open \(name): \(String(cString: strerror(errno)))", code: .cannotOpen) }
        } else if CommandBuilder.hasReplacement(name, replacement: options.replacement, names: builder.names) {
            layout = .template(name)
        } else {
            layout = .tree(root: name)
        }
    }


    /// Where a job's files go: a directory (ending in `/`) or, for a template not ending in `/`,
    /// the stdout file's path.
    func location(sequence: Int, arguments: [String]) -> String? {
        switch layout {
        case .tree(let root):
            var path = root
            let perRecord = columns ? max(1, arguments.count / recordsPerJob) : valuesPerRecord
            // GNU orders the levels of a record by their names, numbers first (`1a 1b 11a b`).
            let names = (0..<perRecord).map { position in
                position < headerNames.count && !headerNames[position].isEmpty ? headerNames[position] : String(position + 1)
            }
            let order = names.indices.sorted { a, b in
                let (x, y) = (Self.perlNumber(names[a]), Self.perlNumber(names[b]))
                return x != y ? x < y : Array(names[a].utf8).lexicographicallyPrecedes(Array(names[b].utf8))
            }
            for start in stride(from: 0, to: arguments.count, by: perRecord) {
                for position in order where start + position < arguments.count {
                    path += "/" + Self.directoryName(names[position]) + "/" + Self.directoryName(arguments[start + position])
                }
            }
            return path + "/"
        case .template(let name):
            return builder.substitute(name, job: CommandBuilder.Job(arguments: arguments, sequence: sequence, slot: 1)) { $0 }
        case .table, .json:
            return nil
        }
    }

    /// A name as a Perl number: its leading decimal number, or 0 (`"1a"` is 1, `"b"` 0).
    static func perlNumber(_ text: String) -> Double {
        let scalars = text.unicodeScalars.drop { $0 == " " || $0 == "\t" }
        var number = ""
        for scalar in scalars {
            guard ("0"..."9").contains(scalar) || (scalar == "." && !number.contains(".")) || (number.isEmpty && (scalar == "-" || scalar == "+")) else { break }
            number.unicodeScalars.append(scalar)
        }
        return Double(number) ?? 0
    }

    /// Where a job's stdout is saved (`nil` for a table).
    func stdoutPath(sequence: Int, arguments: [String]) -> String? {
        location(sequence: sequence, arguments: arguments).map { $0.hasSuffix("/") ? $0 + "stdout" : $0 }
    }

    /// `--resume`: whether a job already has its results (its stdout file exists).
    func hasResult(sequence: Int, arguments: [String]) -> Bool {
        stdoutPath(sequence: sequence, arguments: arguments).map(fileExists) ?? false
    }

    /// Saves a finished job's output (`stdout` and `stderr` are its buffers, read from offset 0).
    /// Returns an error message when a file cannot be written.
    func save(_ record: Record, stdout: OwnedDescriptor?, stderr: OwnedDescriptor?) -> String? {
        switch layout {
        case .tree, .template:
            guard let location = location(sequence: record.sequence, arguments: record.arguments) else { return nil }
            let isDirectory = location.hasSuffix("/")
            let directory = isDirectory ? String(location.dropLast()) : CommandBuilder.dirname(location)
            if let failure = makeDirectories(directory) { return failure }
            let seqPath = isDirectory ? location + "seq" : location + ".seq"
            let errPath = isDirectory ? location + "stderr" : location + ".err"
            let outPath = isDirectory ? location + "stdout" : location
            return Self.writeFile(seqPath, bytes: Array(String(record.sequence).utf8), from: nil)
                ?? Self.writeFile(errPath, bytes: [], from: stderr)
                ?? Self.writeFile(outPath, bytes: [], from: stdout)
        case .table(let separator):
            var bytes: [UInt8] = []
            if !headerWritten {
                let names = ["Seq", "Host", "Starttime", "JobRuntime", "Send", "Receive", "Exitval", "Signal", "Command"]
                    + record.arguments.indices.map { "V\($0 + 1)" } + ["Stdout", "Stderr"]
                bytes += Self.row(names.map(\.escapedBytes), separator: separator)
                headerWritten = true
            }
            let out = Self.contents(stdout)
            let fields: [[UInt8]] = [
                Array(String(record.sequence).utf8), Array(":".utf8),
                Array(cFormat("%.3f", record.startEpoch).utf8), Array(cFormat("%.3f", record.runtime).utf8),
                Array(String(record.sent).utf8), Array(String(out.count).utf8),
                Array(String(record.exit).utf8), Array(String(record.signal).utf8), record.command.escapedBytes,
            ] + record.arguments.map(\.escapedBytes) + [out, Self.contents(stderr)]
            bytes += Self.row(fields, separator: separator)
            return writeFully(table!.raw, bytes) ? nil : "cannot write the --results table: \(String(cString: strerror(errno)))"
        case .json:
            let out = Self.contents(stdout)
            var line = Array(cFormat("{ \"Seq\": %ld, \"Host\": \":\", \"Starttime\": %.3f, \"JobRuntime\": %.3f, ", record.sequence, record.startEpoch, record.runtime).utf8)
            line += Array("\"Send\": \(record.sent), \"Receive\": \(out.count), \"Exitval\": \(record.exit), \"Signal\": \(record.signal), \"Command\": \"".utf8)
            line += jsonEscaped(record.command.escapedBytes) + Array("\", \"V\": [ ".utf8)
            line += record.arguments.map { [UInt8(ascii: "\"")] + jsonEscaped($0.escapedBytes) + [UInt8(ascii: "\"")] }.joined(separator: [UInt8(ascii: ",")])
            line += Array(" ], \"Stdout\": \"".utf8) + jsonEscaped(out) + Array("\", \"Stderr\": \"".utf8)
            line += jsonEscaped(Self.contents(stderr)) + Array("\" }\n".utf8)
            return writeFully(table!.raw, line) ? nil : "cannot write the --results file: \(String(cString: strerror(errno)))"
        }
    }

    // MARK: Formats (pure)

    /// A value as one directory name, as GNU writes it: `\` `\\`, tab `\t`, NUL `\0`, `/` `\_`,
    /// cut to 255 bytes (the longest name Linux file systems take) at a character boundary.
    static func directoryName(_ value: String) -> String {
        var name = ""
        for character in value {
            switch character {
            case "\\": name += "\\\\"
            case "\t": name += "\\t"
            case "\0": name += "\\0"
            case "/": name += "\\_"
            default: name.append(character)
            }
        }
        while name.utf8.count > 255 { name.removeLast() }
        return name
    }

    /// One CSV/TSV line: a field is quoted when it holds a quote (doubled), white space, the
    /// separator or NUL — GNU's rule.
    static func row(_ fields: [[UInt8]], separator: UInt8) -> [UInt8] {
        var line: [UInt8] = []
        for (index, field) in fields.enumerated() {
            if index > 0 { line.append(separator) }
            let quote = UInt8(ascii: "\"")
            let needsQuotes = field.contains { byte in
                byte == quote || byte == separator || byte == 0 || byte == 0x20 || (0x09...0x0D).contains(byte)
            }
            guard needsQuotes else { line += field; continue }
            line.append(quote)
            for byte in field {
                if byte == quote { line.append(quote) }
                line.append(byte)
            }
            line.append(quote)
        }
        line.append(UInt8(ascii: "\n"))
        return line
    }

    // MARK: Files

    /// Writes `bytes`, then all of `source` from its start, to a new (truncated) file at `path`.
    private static func writeFile(_ path: String, bytes: [UInt8], from source: OwnedDescriptor?) -> String? {
        guard let file = OwnedDescriptor(openFile(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o666)) else {
            return "cannot write \(path): \(String(cString: strerror(errno)))"
        }
        guard writeFully(file.raw, bytes), copyWholeFile(from: source, to: file.raw) else { return "cannot write \(path): \(String(cString: strerror(errno)))" }
        return nil
    }

    /// All of a buffer's bytes (tables hold whole outputs, as GNU's do).
    private static func contents(_ buffer: OwnedDescriptor?) -> [UInt8] {
        guard let fd = buffer?.raw else { return [] }
        let size = Int(lseek(fd, 0, SEEK_END))
        guard size > 0 else { return [] }
        var bytes = [UInt8](repeating: 0, count: size)
        var done = 0
        while done < size {
            let count = bytes.withUnsafeMutableBytes { bytes in retryingInterrupts { pread(fd, bytes.baseAddress! + done, size - done, off_t(done)) } }
            if count <= 0 { break }
            done += count
        }
        return Array(bytes[0..<done])
    }
}
