#if canImport(Glibc)
import Glibc
#endif
import Foundation
import WorkersCore

/// A TCP server on 127.0.0.1 that answers each request line with `pong` after a set latency: the
/// lab's real I/O. A thread per connection, so its own latency never queues.
public final class LoopbackServer: @unchecked Sendable {  // @unchecked: `stopped` is guarded by `lock`.
    /// The port it listens on.
    public let port: UInt16
    private let listener: Int32
    private let latency: Double
    private let lock = PthreadLock()
    private var stopped = false
    private let acceptorDone = Event()

    /// Starts listening on an ephemeral port.
    ///
    /// - Parameter latency: how long the server waits before answering, in seconds.
    public init(latency: Double) throws {
        self.latency = latency
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw LabError("socket: errno \(errno)") }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 256) == 0 else {
            close(fd)
            throw LabError("bind/listen on 127.0.0.1: errno \(errno)")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        port = UInt16(bigEndian: address.sin_port)
        listener = fd
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    /// Stops accepting and closes the listening socket.
    public func stop() {
        let first: Bool = lock.withLock {
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        shutdown(listener, Int32(SHUT_RDWR))
        acceptorDone.wait()
        close(listener)
    }

    deinit { stop() }

    private func acceptLoop() {
        defer { acceptorDone.set() }
        while true {
            let connection = retryingInterrupts { accept(listener, nil, nil) }
            if connection < 0 {
                if errno == ECONNABORTED { continue }
                return
            }
            if lock.withLock({ stopped }) {
                close(connection)
                return
            }
            _ = fcntl(connection, F_SETFD, FD_CLOEXEC)  // workers spawned meanwhile must not inherit it
            let latency = self.latency
            Thread.detachNewThread { Self.answer(connection, after: latency) }
        }
    }

    private static func answer(_ connection: Int32, after latency: Double) {
        defer { close(connection) }
        var byte: UInt8 = 0
        while true {  // one line
            let count = read(connection, &byte, 1)
            if count <= 0 { return }
            if byte == UInt8(ascii: "\n") { break }
        }
        blockingSleep(seconds: latency)
        let reply: [UInt8] = Array("pong\n".utf8)
        _ = reply.withUnsafeBytes { write(connection, $0.baseAddress, $0.count) }
    }
}

/// A failure of the lab's own machinery (a socket, python3's output), with what went wrong.
public struct LabError: Error, CustomStringConvertible {
    /// What went wrong.
    public var description: String
    init(_ description: String) { self.description = description }
}

/// One request to the loopback server, with blocking calls (as `socket` in Python or a sync
/// client): connect, send a line, read the answer, close. `waiting` brackets the blocking part,
/// so a caller under the simulated GIL releases it there.
func blockingRequest(port: UInt16) throws {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw LabError("socket: errno \(errno)") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = port.bigEndian
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { throw LabError("connect to 127.0.0.1:\(port): errno \(errno)") }
    let line: [UInt8] = Array("ping\n".utf8)
    guard line.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == line.count else { throw LabError("send: errno \(errno)") }
    var answer = [UInt8](repeating: 0, count: 16)
    var received = 0
    while received < 5 {
        let count = answer.withUnsafeMutableBytes { answer in retryingInterrupts { read(fd, answer.baseAddress! + received, answer.count - received) } }
        guard count > 0 else { throw LabError("the server closed the connection early") }
        received += count
    }
}

/// `count` requests at once on ONE thread, with non-blocking sockets and `poll` — what asyncio
/// does: the one cashier who starts every order and serves whichever is ready. `onDone(task,
/// start, end)` reports each request's span.
func eventLoopRequests(port: UInt16, count: Int, onDone: (Int, Double, Double) -> Void) throws {
    enum Phase { case connecting, sending, receiving, done }
    struct Request { var fd: Int32; var phase: Phase; var received: Int; var start: Double }
    var requests: [Request] = []
    defer { for request in requests where request.fd >= 0 { close(request.fd) } }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = port.bigEndian
    for _ in 0..<count {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw LabError("socket: errno \(errno)") }
        let start = monotonicSeconds()
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 || errno == EINPROGRESS else { close(fd); throw LabError("connect: errno \(errno)") }
        requests.append(Request(fd: fd, phase: .connecting, received: 0, start: start))
    }
    let line: [UInt8] = Array("ping\n".utf8)
    var buffer = [UInt8](repeating: 0, count: 16)
    var remaining = count
    while remaining > 0 {
        var descriptors = requests.map { request -> pollfd in
            let events: Int32 = switch request.phase {
            case .connecting, .sending: Int32(POLLOUT)
            case .receiving: Int32(POLLIN)
            case .done: 0
            }
            return pollfd(fd: request.phase == .done ? -1 : request.fd, events: Int16(events), revents: 0)
        }
        let ready = retryingInterrupts { poll(&descriptors, nfds_t(descriptors.count), 10_000) }
        guard ready > 0 else { throw LabError("no answer from the loopback server in 10 s") }
        for index in requests.indices where descriptors[index].revents != 0 {
            switch requests[index].phase {
            case .connecting, .sending:
                let sent = line.withUnsafeBytes { write(requests[index].fd, $0.baseAddress, $0.count) }
                guard sent == line.count else { throw LabError("send: errno \(errno)") }
                requests[index].phase = .receiving
            case .receiving:
                let got = buffer.withUnsafeMutableBytes { readRetryingInterrupts(requests[index].fd, into: $0) }
                if got < 0, errno == EAGAIN { continue }
                guard got > 0 else { throw LabError("the server closed the connection early") }
                requests[index].received += got
                if requests[index].received >= 5 {
                    requests[index].phase = .done
                    close(requests[index].fd)
                    requests[index].fd = -1
                    remaining -= 1
                    onDone(index, requests[index].start, monotonicSeconds())
                }
            case .done:
                break
            }
        }
    }
}
