#if canImport(Glibc)
import Glibc
#endif
import WorkersCore

/// `--joblog FILE`: GNU parallel's table, a row per job as it ends (`-` is standard output).
struct Joblog {
    static let header = "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n"

    private let file: OwnedDescriptor

    /// Opens the joblog: appended to with `appending` (a file that is empty, as `mktemp` makes
    /// one, gets the header too, as GNU's), else truncated and given the header.
    ///
    /// - Throws: ``RunUsageError`` when the file cannot be opened.
    init(path: String, appending: Bool) throws(RunUsageError) {
        let toStdout = path == "-"
        var status = stat()
        let hasRows = !toStdout && path.withEscapedCString { stat($0, &status) } == 0 && status.st_size > 0
        let append = !toStdout && appending
        let opened = OwnedDescriptor(toStdout ? fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3)
            : openFile(path, O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0o644))
        guard let opened else { throw RunUsageError("cannot open the joblog \(path): \(String(cString: strerror(errno)))", code: .cannotOpen) }
        file = opened
        if !(append && hasRows) { writeFully(opened.raw, Array(Self.header.utf8)) }
    }

    /// One row, GNU's columns. A command's newlines become NULs, as GNU writes them, so a row
    /// stays one line.
    func write(sequence: Int, host: String = ":", start: Double, runtime: Double, sent: Int, received: Int, exit: Int32, signal: Int32, command: String) {
        let row = String(sequence) + "\t" + host.replacingNewlines(with: " ") + "\t"
            + cFormat("%.3f\t%10.3f\t%ld\t%ld\t%d\t%d\t", start, runtime, sent, received, exit, signal) + command.replacingNewlines(with: "\0") + "\n"
        writeFully(file.raw, row.escapedBytes)
    }
}

/// `--json`: one event a finished job, a line of JSON on stderr.
struct JobEvent {
    var arguments: [String]
    var command: String
    var exit: Int32
    var runtime: Double
    var sequence: Int
    var signal: Int32
    var slot: Int
    var timedOut: Bool

    /// The event's line: keys in sorted order, as before, so consumers that diff events keep working.
    var line: String {
        let values = arguments.map(jsonString).joined(separator: ",")
        return "{\"args\":[\(values)],\"command\":\(jsonString(command)),\"exit\":\(exit),"
            + "\"runtime_s\":\(runtime),\"seq\":\(sequence),\"signal\":\(signal),\"slot\":\(slot),"
            + "\"timed_out\":\(timedOut)}\n"
    }
}
