#if canImport(Glibc)
import Glibc
#endif
import CWorkersShims
import WorkersCore

/// The driver's end of one host's link: the transport it started (ssh, or srun) whose stdin and
/// stdout are one end of a socket pair, the agent at the far end, and the frames both ways.
///
/// Writes never block the run: frames queue and go as the socket takes them (the poll loop asks
/// for POLLOUT while ``wantsWrite``), so a host that is slow to read cannot stall the others.
final class RemoteLink {
    let login: SSHLogin
    let socket: OwnedDescriptor
    /// The transport's process (in a process group of its own: a Ctrl-C at the terminal reaches
    /// us, and we end the remote jobs through the agent).
    let pid: pid_t
    /// The transport's program name (`ssh`, `srun`), for messages.
    let program: String
    /// The transport's stderr (ssh's messages: why a host cannot be reached), in a memory file.
    private let errors: OwnedDescriptor?
    private var outgoing: [UInt8] = []
    private var sent = 0
    private var decoder: RemoteFrameDecoder
    /// Until the agent's mark: what the login wrote (kept for the reason a host failed).
    private var beforeMark: [UInt8]? = []
    private var reaped = false
    /// How the transport ended, when it ended by itself (not killed by ``close(grace:)``).
    private(set) var endStatus: WaitStatus?
    /// Heartbeats, and the silence that means the link is cut.
    var watch: LinkWatch
    /// From the agent's ready frame.
    var cpus: Int?
    var remoteName: String?

    private init(login: SSHLogin, program: String, socket: OwnedDescriptor, pid: pid_t, errors: OwnedDescriptor?) {
        self.login = login
        self.program = program
        self.socket = socket
        self.pid = pid
        self.errors = errors
        decoder = RemoteFrameDecoder(terminator: login.slurm ? 10 : nil)
        watch = LinkWatch(lostAfter: 60, now: monotonicSeconds())
    }

    deinit { close(grace: 0) }

    /// Starts `argv` with the link as its stdin and stdout, and says hello.
    static func start(login: SSHLogin, argv: [String]) -> Result<RemoteLink, RemoteLinkFailure> {
        var ends: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &ends) == 0,
              let ours = OwnedDescriptor(ends[0]), let theirs = OwnedDescriptor(ends[1]) else {
            return .failure(RemoteLinkFailure("socketpair: \(String(cString: strerror(errno)))"))
        }
        guard let path = executablePath(argv[0]) else { return .failure(RemoteLinkFailure("\(argv[0]): command not found")) }
        let errors = OwnedDescriptor(cworkers_memory_file("workers-run-link"))
        let pid = withEscapedCStrings(argv) { argvPointer in
            path.withEscapedCString { cworkers_spawn_job($0, argvPointer, environ, theirs.raw, theirs.raw, errors?.raw ?? -1, nil, 0, 2) }
        }
        guard pid > 0 else { return .failure(RemoteLinkFailure("\(argv[0]): \(String(cString: strerror(-pid)))")) }
        _ = fcntl(ours.raw, F_SETFL, O_NONBLOCK)
        return .success(RemoteLink(login: login, program: String(argv[0].split(separator: "/").last ?? ""), socket: ours, pid: pid, errors: errors))
    }

    /// Queues `frame`; the run's loop sends what is queued before it waits (``flush()``), so
    /// the jobs started in one turn go in one write.
    func send(_ frame: RemoteFrame) {
        frame.encode(into: &outgoing)
        watch.sent(at: monotonicSeconds())
    }

    /// Whether frames wait for the socket to take them.
    var wantsWrite: Bool { sent < outgoing.count }

    /// Sends what the socket takes; `false` when the link is broken.
    func flush() -> Bool {
        while sent < outgoing.count {
            let written = outgoing.withUnsafeBytes { bytes in
                retryingInterrupts { Glibc.send(socket.raw, bytes.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            }
            if written > 0 {
                sent += written
                continue
            }
            return written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)
        }
        outgoing.removeAll(keepingCapacity: outgoing.capacity <= 1 << 20)
        sent = 0
        return true
    }

    /// What arrived: whole frames, and why the link ended, if it did (the agent's end closed, or
    /// a malformed frame).
    func receive() -> (frames: [RemoteFrame], ended: String?) {
        var frames: [RemoteFrame] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { readRetryingInterrupts(socket.raw, into: $0) }
            if count > 0 {
                watch.heard(at: monotonicSeconds())
                if var seen = beforeMark {
                    seen += chunk[0..<count]
                    guard let mark = seen.firstRange(of: RemoteFrame.agentMark) else {
                        beforeMark = seen.count > 1 << 16 ? Array(seen.suffix(1 << 16)) : seen
                        continue
                    }
                    beforeMark = nil
                    loginOutput = String(escaping: seen[..<mark.lowerBound])
                    var rest = seen[mark.upperBound...]
                    // The mark's own terminator: its first byte, when the frames have one.
                    if decoder.terminator != nil {
                        guard let first = rest.first else { beforeMark = Array(seen[..<mark.upperBound]); continue }
                        guard first == decoder.terminator else { return (frames, "protocol error: the agent's mark is not followed by its terminator") }
                        rest = rest.dropFirst()
                    }
                    decoder.feed(rest)
                } else {
                    decoder.feed(chunk[0..<count])
                }
                do {
                    while let frame = try decoder.next() { frames.append(frame) }
                } catch {
                    return (frames, "protocol error: \(error.description)")
                }
                continue
            }
            if count < 0, errno == EAGAIN || errno == EWOULDBLOCK { return (frames, nil) }
            return (frames, count == 0 ? "the connection ended" : "the connection broke: \(String(cString: strerror(errno)))")
        }
    }

    /// What the login wrote before the agent ran.
    private(set) var loginOutput = ""

    /// The last line the transport wrote on stderr (ssh's reason), or before the agent's mark
    /// (a login shell's: `workers: not found`), or "".
    var lastError: String {
        if let seen = beforeMark, let line = lastLine(seen[...]) { return line }
        guard let errors else { return "" }
        let size = Int(lseek(errors.raw, 0, SEEK_END))
        guard size > 0 else { return "" }
        let start = max(0, size - 2048)
        var bytes = [UInt8](repeating: 0, count: size - start)
        let count = bytes.withUnsafeMutableBytes { pread(errors.raw, $0.baseAddress, $0.count, off_t(start)) }
        guard count > 0 else { return "" }
        return lastLine(bytes[0..<count]) ?? ""
    }

    private func lastLine(_ bytes: ArraySlice<UInt8>) -> String? {
        // By bytes: ssh ends its lines with CR LF, which Swift reads as one character.
        let lines = bytes.split(whereSeparator: { $0 == 10 || $0 == 13 }).map { trimmed(String(escaping: $0), of: [" ", "\t"]) }
        return lines.last { !$0.isEmpty }
    }

    /// Ends the link: the socket is shut (the agent sees its input end and ends its jobs), the
    /// transport is given `grace` seconds to exit, then killed, and reaped.
    /// Whether ``close(grace:)`` has run.
    var closed: Bool { reaped }

    func close(grace: Double) {
        guard !reaped else { return }
        reaped = true
        shutdown(socket.raw, Int32(SHUT_RDWR))
        let deadline = monotonicNanoseconds() + UInt64(max(0, grace) * 1e9)
        if let pidfd = OwnedDescriptor(cworkers_pidfd_open(pid)) { _ = waitUntilReady(pidfd.raw, for: Int32(POLLIN), until: deadline) }
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == 0 {
            kill(-pid, SIGKILL)
            kill(pid, SIGKILL)
            _ = waitForExit(pid)
        } else {
            endStatus = WaitStatus(raw: status)
        }
    }

    /// How the transport ended, once closed, for a host that failed without a word on stderr:
    /// `ssh exited with status 255`, `… was killed by signal 9`, or nil.
    var transportEnd: String? {
        if let signal = endStatus?.signal { return "\(program) was killed by signal \(signal)" }
        guard let code = endStatus?.exitCode, code != 0 else { return nil }
        return "\(program) exited with status \(code)"
    }

    /// Sends what is queued, waiting up to `seconds` for the socket to take it.
    func drain(seconds: Double) {
        let deadline = monotonicNanoseconds() + UInt64(seconds * 1e9)
        while wantsWrite, flush(), monotonicNanoseconds() < deadline {
            _ = waitUntilReady(socket.raw, for: Int32(POLLOUT), until: deadline)
        }
    }
}

/// Why a host's link could not be started.
struct RemoteLinkFailure: Error {
    var reason: String
    init(_ reason: String) { self.reason = reason }
}
