#if canImport(Glibc)
import Glibc
#endif
import WorkersCore

/// The remote-job protocol between `workers run` and the agent it starts on each host (one ssh
/// or `srun` connection a host; the agent's stdin and stdout are the link).
///
/// A frame is `length: UInt32 (big-endian) | kind: UInt8 | job: UInt64 (big-endian) | payload`,
/// where `length` counts everything after itself. A payload is a list of fields, each
/// `length: UInt32 (big-endian) | bytes`: commands, names and outputs travel as bytes, never as
/// text, so nothing on the way (no remote shell's quoting) can change them.
struct RemoteFrame: Equatable {
    enum Kind: UInt8, CaseIterable {
        // Driver → agent (after the agent's ready).
        /// The protocol's version (field 0, decimal): the agent refuses jobs before it.
        case hello = 1
        /// Start a job: ``RemoteStart``.
        case start = 2
        /// Send a signal (field 0, decimal) to a job's process group.
        case signal = 3
        /// Write a file (``RemoteFile``) before any job: `--basefile`.
        case put = 4
        /// No more jobs: remove what the fields list (`--cleanup` of base files), end the jobs, exit.
        case goodbye = 5
        /// Either way, every ``LinkWatch/interval`` seconds: the sender is alive. A side that
        /// hears nothing for the hello's lost-after milliseconds (field 1) takes the link for
        /// cut: the driver fails the host's jobs, the agent ends them.
        case heartbeat = 6

        // Agent → driver.
        /// The agent runs (its first frame, after ``RemoteFrame/agentMark``): its protocol
        /// version, CPU count and host name.
        case ready = 10
        /// A job's output (field 0).
        case stdout = 11
        case stderr = 12
        /// A `--return` file of a job, sent before it ends: ``RemoteFile``.
        case returned = 13
        /// A job ended: field 0 its wait status, decimal; field 1 why it did not start, if so.
        case exited = 14
    }

    /// The protocol's version; each side refuses another.
    static let version = 1
    /// What the agent writes first: the link's frames start after it, and whatever came before
    /// (a login shell's greeting, `workers: not found`) is the login's, not the agent's.
    static let agentMark: [UInt8] = [0] + Array("workers-run-agent".utf8) + [0]
    /// The largest frame either side accepts: a frame over it is a protocol error.
    static let maximumLength = 1 << 30
    static let headerSize = 9

    var kind: Kind
    var job: UInt64
    var fields: [[UInt8]]

    init(_ kind: Kind, job: UInt64 = 0, fields: [[UInt8]] = []) {
        self.kind = kind
        self.job = job
        self.fields = fields
    }

    /// The frame's wire form, appended to `buffer`.
    func encode(into buffer: inout [UInt8]) {
        let length = Self.headerSize + fields.reduce(0) { $0 + 4 + $1.count }
        appendUInt32(UInt32(length), to: &buffer)
        buffer.append(kind.rawValue)
        for shift in stride(from: 56, through: 0, by: -8) { buffer.append(UInt8(truncatingIfNeeded: job >> UInt64(shift))) }
        for field in fields {
            appendUInt32(UInt32(field.count), to: &buffer)
            buffer.append(contentsOf: field)
        }
    }

    var encoded: [UInt8] {
        var buffer: [UInt8] = []
        encode(into: &buffer)
        return buffer
    }

    /// Field `index` as a decimal number, or `nil`.
    func number(_ index: Int) -> Int? {
        guard index < fields.count else { return nil }
        return Int(String(decoding: fields[index], as: UTF8.self))
    }

    /// Field `index` as an escaped string (bytes that are not UTF-8 kept), or "".
    func text(_ index: Int) -> String {
        index < fields.count ? String(escaping: fields[index]) : ""
    }
}

/// When a link is due a heartbeat, and when its silence means it is cut. Pure: the caller
/// passes the time.
struct LinkWatch: Equatable {
    /// Seconds between heartbeats.
    static let interval = 1.0
    /// Seconds of silence after which the link is taken for cut.
    var lostAfter: Double
    private(set) var lastHeard: Double
    private(set) var lastSent: Double

    init(lostAfter: Double, now: Double) {
        self.lostAfter = lostAfter
        lastHeard = now
        lastSent = now
    }

    mutating func heard(at now: Double) { lastHeard = max(lastHeard, now) }
    mutating func sent(at now: Double) { lastSent = max(lastSent, now) }
    /// Whether a heartbeat is due (nothing sent for an interval).
    func heartbeatDue(at now: Double) -> Bool { now - lastSent >= Self.interval }
    /// Whether the other side has been silent too long.
    func isLost(at now: Double) -> Bool { now - lastHeard > lostAfter }
    /// When something is next to be done: a heartbeat, or the silence to become a loss.
    var nextWake: Double { min(lastSent + Self.interval, lastHeard + lostAfter) }
}

/// A link that broke the protocol: an unknown kind, a frame over the limit, a payload whose
/// fields do not add up. The link is given up; the jobs on it are lost, as on a cut link.
struct RemoteProtocolError: Error, Equatable, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Cuts frames out of a byte stream as it arrives, in any pieces.
struct RemoteFrameDecoder {
    private var buffer: [UInt8] = []
    private var start = 0
    /// A byte the sender puts after every frame (a newline, over links that pass output on
    /// line by line: srun's), checked and dropped; `nil`: none.
    var terminator: UInt8?

    init(terminator: UInt8? = nil) { self.terminator = terminator }

    /// Takes bytes as they came.
    mutating func feed<C: Collection<UInt8>>(_ bytes: C) {
        if start > 0, start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// Bytes fed but not yet part of a whole frame.
    var pending: Int { buffer.count - start }

    /// The next whole frame, `nil` until one has arrived.
    ///
    /// - Throws: ``RemoteProtocolError`` for a malformed frame; the stream is then unusable.
    mutating func next() throws(RemoteProtocolError) -> RemoteFrame? {
        guard buffer.count - start >= 4 else { return nil }
        let length = Int(readUInt32(buffer, at: start))
        guard length >= RemoteFrame.headerSize, length <= RemoteFrame.maximumLength else {
            throw RemoteProtocolError("a frame of \(length) bytes (the limits are \(RemoteFrame.headerSize) and \(RemoteFrame.maximumLength))")
        }
        let trailer = terminator == nil ? 0 : 1
        guard buffer.count - start >= 4 + length + trailer else { return nil }
        if let terminator, buffer[start + 4 + length] != terminator {
            throw RemoteProtocolError("a frame not followed by its terminator byte \(terminator)")
        }
        let kindByte = buffer[start + 4]
        guard let kind = RemoteFrame.Kind(rawValue: kindByte) else { throw RemoteProtocolError("a frame of unknown kind \(kindByte)") }
        var job: UInt64 = 0
        for offset in 5..<13 { job = job << 8 | UInt64(buffer[start + offset]) }
        var fields: [[UInt8]] = []
        var position = start + 13
        let end = start + 4 + length
        while position < end {
            guard end - position >= 4 else { throw RemoteProtocolError("a \(kind) frame whose last field is cut short") }
            let count = Int(readUInt32(buffer, at: position))
            position += 4
            guard count <= end - position else { throw RemoteProtocolError("a \(kind) frame with a field of \(count) bytes past its end") }
            fields.append(Array(buffer[position..<position + count]))
            position += count
        }
        start = end + trailer
        // Keep the buffer from growing without end on a long stream of small frames.
        if start > 1 << 16, start * 2 > buffer.count {
            buffer.removeFirst(start)
            start = 0
        }
        return RemoteFrame(kind, job: job, fields: fields)
    }
}

private func appendUInt32(_ value: UInt32, to buffer: inout [UInt8]) {
    buffer.append(UInt8(truncatingIfNeeded: value >> 24))
    buffer.append(UInt8(truncatingIfNeeded: value >> 16))
    buffer.append(UInt8(truncatingIfNeeded: value >> 8))
    buffer.append(UInt8(truncatingIfNeeded: value))
}

private func readUInt32(_ buffer: [UInt8], at index: Int) -> UInt32 {
    UInt32(buffer[index]) << 24 | UInt32(buffer[index + 1]) << 16 | UInt32(buffer[index + 2]) << 8 | UInt32(buffer[index + 3])
}

/// A job to start on a host, as the driver sends it (the fields of a ``RemoteFrame/Kind/start``).
struct RemoteStart: Equatable {
    /// The shell that runs the command (`$SHELL` as the driver chose it; the agent falls back to
    /// /bin/sh when it has none of that name).
    var shell: String
    var command: String
    /// Where it runs: "" the login directory, a relative path from there, or an absolute path;
    /// made when missing.
    var directory: String
    /// Whether the directory is the job's own (`--workdir ...`), removed when it ends.
    var removeDirectory: Bool
    /// `NAME=value` entries added to the agent's environment.
    var environment: [String]
    /// `--transferfile`: files written (relative to the directory) before the job starts.
    var files: [RemoteFile]
    /// `--return`: files sent back (relative to the directory) when it ends.
    var returns: [String]
    /// `--cleanup`: the transferred and returned files are removed when it ends.
    var cleanup: Bool
    /// A command of plain words (no shell syntax): the program and its arguments, run without
    /// the shell where the host has the program as a binary or script (a fork and a shell's
    /// start-up fewer, as for local jobs); empty, or not found there: the shell runs `command`.
    var words: [String]

    var fields: [[UInt8]] {
        var fields: [[UInt8]] = [shell.escapedBytes, command.escapedBytes, directory.escapedBytes, [removeDirectory ? 1 : 0], [cleanup ? 1 : 0],
                                 Array(String(environment.count).utf8), Array(String(files.count).utf8), Array(String(returns.count).utf8),
                                 Array(String(words.count).utf8)]
        fields += environment.map(\.escapedBytes)
        for file in files { fields += file.fields }
        fields += returns.map(\.escapedBytes)
        fields += words.map(\.escapedBytes)
        return fields
    }

    init(shell: String, command: String, directory: String = "", removeDirectory: Bool = false, environment: [String] = [],
         files: [RemoteFile] = [], returns: [String] = [], cleanup: Bool = false, words: [String] = []) {
        self.shell = shell
        self.command = command
        self.directory = directory
        self.removeDirectory = removeDirectory
        self.environment = environment
        self.files = files
        self.returns = returns
        self.cleanup = cleanup
        self.words = words
    }

    init(_ frame: RemoteFrame) throws(RemoteProtocolError) {
        let fields = frame.fields
        guard fields.count >= 9, let environmentCount = frame.number(5), let fileCount = frame.number(6), let returnCount = frame.number(7),
              let wordCount = frame.number(8), environmentCount >= 0, fileCount >= 0, returnCount >= 0, wordCount >= 0,
              fields.count == 9 + environmentCount + 3 * fileCount + returnCount + wordCount else {
            throw RemoteProtocolError("a start frame whose fields do not add up")
        }
        shell = frame.text(0)
        command = frame.text(1)
        directory = frame.text(2)
        removeDirectory = fields[3] == [1]
        cleanup = fields[4] == [1]
        var index = 9
        environment = (0..<environmentCount).map { frame.text(index + $0) }
        index += environmentCount
        files = []
        for _ in 0..<fileCount {
            files.append(try RemoteFile(frame, at: index))
            index += 3
        }
        returns = (0..<returnCount).map { frame.text(index + $0) }
        index += returnCount
        words = (0..<wordCount).map { frame.text(index + $0) }
    }
}

/// A file on the link: its path, mode and contents.
struct RemoteFile: Equatable {
    var path: String
    var mode: UInt32
    var contents: [UInt8]

    var fields: [[UInt8]] { [path.escapedBytes, Array(String(mode, radix: 8).utf8), contents] }

    init(path: String, mode: UInt32, contents: [UInt8]) {
        self.path = path
        self.mode = mode
        self.contents = contents
    }

    /// The file `path` names from `directory`, read whole, its mode with it; `nil` (errno set)
    /// when it cannot be read.
    init?(reading path: String, from directory: String) {
        let full = resolve(path, in: directory)
        var info = stat()
        guard let contents = readWholeFile(full), full.withEscapedCString({ stat($0, &info) }) == 0 else { return nil }
        self.init(path: path, mode: info.st_mode & 0o7777, contents: contents)
    }

    /// Writes the file (its path from `directory`), making the directories on its way; an error
    /// message, or `nil`.
    func write(in directory: String) -> String? {
        let full = resolve(path, in: directory)
        if let slash = full.lastIndex(of: "/"), slash != full.startIndex, let failure = makeDirectories(String(full[..<slash])) { return failure }
        guard let fd = OwnedDescriptor(openFile(full, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode_t(mode & 0o7777))) else {
            return "cannot write \(full): \(String(cString: strerror(errno)))"
        }
        _ = fchmod(fd.raw, mode_t(mode & 0o7777))
        return writeFully(fd.raw, contents) ? nil : "cannot write \(full): \(String(cString: strerror(errno)))"
    }

    /// The file in `frame`'s fields from `index` (path, octal mode, contents).
    init(_ frame: RemoteFrame, at index: Int) throws(RemoteProtocolError) {
        guard index + 3 <= frame.fields.count, let mode = UInt32(String(decoding: frame.fields[index + 1], as: UTF8.self), radix: 8) else {
            throw RemoteProtocolError("a \(frame.kind) frame with a malformed file")
        }
        path = frame.text(index)
        self.mode = mode
        contents = frame.fields[index + 2]
    }
}

/// `path` from `directory` (an absolute path stays as it is).
func resolve(_ path: String, in directory: String) -> String {
    path.hasPrefix("/") ? path : (directory.hasSuffix("/") ? directory + path : directory + "/" + path)
}
