#if canImport(Glibc)
import Glibc
#endif
import Crypto
import Foundation

/// The secret of one pool: 32 random bytes that the driver and its agents prove to each other
/// they hold, and from which each link's session keys are derived.
///
/// It travels as 64 hex digits in a file of mode 0600 in a directory of mode 0700, both owned by
/// the user (ssh's rule: anything else is refused, naming the problem), or, where no file can be
/// shared, in `WORKERS_KEY`, which the agent removes from its environment before it starts
/// workers. Never in a command line: `/proc/PID/cmdline` is readable by every user.
public struct PoolKey: Sendable {
    /// The variable that names the key file for an agent.
    public static let fileVariable = "WORKERS_KEY_FILE"
    /// The fallback: the key itself, in hex.
    public static let environmentVariable = "WORKERS_KEY"

    private let storage: SendableKey
    var key: SymmetricKey { storage.key }

    /// A new random key.
    public static func generate() -> PoolKey {
        PoolKey(key: SymmetricKey(size: .bits256))
    }

    init(key: SymmetricKey) {
        storage = SendableKey(key: key)
    }

    /// The key from 64 hex digits (surrounding white space ignored).
    public init(hex text: String) throws(ClusterError) {
        let digits = Array(text.utf8.filter { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 })
        guard digits.count == 64, let bytes = Self.decodeHex(digits) else {
            throw ClusterError(.keyFile, "a pool key is 64 hex digits (got \(digits.count) characters)")
        }
        storage = SendableKey(key: SymmetricKey(data: bytes))
    }

    /// The key as 64 hex digits.
    public var hex: String {
        key.withUnsafeBytes { hexString($0) }
    }

    private static func decodeHex(_ digits: [UInt8]) -> [UInt8]? {
        func value(_ digit: UInt8) -> UInt8? {
            switch digit {
            case 0x30...0x39: digit - 0x30
            case 0x61...0x66: digit - 0x61 + 10
            case 0x41...0x46: digit - 0x41 + 10
            default: nil
            }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        var index = 0
        while index < digits.count {
            guard let high = value(digits[index]), let low = value(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }

    // MARK: Files

    /// Writes the key into a new private directory under `parent` (created 0700 if missing;
    /// default `~/.cache/swift-workers`) and returns the file's path. The file is created with
    /// mode 0600 and `O_EXCL`, so there is no moment at which another user could read it.
    public func writeToNewDirectory(under parent: String? = nil) throws(ClusterError) -> String {
        let base = parent ?? Self.defaultParent
        try Self.makePrivateDirectory(base)
        var randomName = [UInt8](repeating: 0, count: 8)
        for index in randomName.indices { randomName[index] = UInt8.random(in: 0...255) }
        let directory = base + "/pool-" + hexString(randomName)
        guard mkdir(directory, 0o700) == 0 else {
            throw ClusterError(.keyFile, "cannot create \(directory): \(String(cString: strerror(errno)))")
        }
        let path = directory + "/key"
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw ClusterError(.keyFile, "cannot create \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        let text = Array((hex + "\n").utf8)
        guard text.withUnsafeBytes({ write(descriptor, $0.baseAddress, $0.count) }) == text.count else {
            throw ClusterError(.keyFile, "cannot write \(path): \(String(cString: strerror(errno)))")
        }
        return path
    }

    /// Removes a key file written by ``writeToNewDirectory(under:)`` and its directory, with
    /// whatever the pool kept beside it (launcher logs).
    public static func remove(file path: String) {
        unlink(path)
        guard let slash = path.lastIndex(of: "/") else { return }
        let directory = String(path[..<slash])
        if directory.contains("/pool-") { try? FileManager.default.removeItem(atPath: directory) }
    }

    static var defaultParent: String {
        let home = getenv("HOME").map { String(cString: $0) } ?? "/tmp"
        return home + "/.cache/swift-workers"
    }

    private static func makePrivateDirectory(_ path: String) throws(ClusterError) {
        var components: [Substring] = []
        for component in path.split(separator: "/") {
            components.append(component)
            let prefix = "/" + components.joined(separator: "/")
            if mkdir(prefix, 0o700) != 0 && errno != EEXIST {
                throw ClusterError(.keyFile, "cannot create \(prefix): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Reads the key from `path`, refusing a file that others could have read or written: it
    /// must be a regular file owned by this user with no group or other permission bits, in a
    /// directory owned by this user with none either.
    public static func load(file path: String) throws(ClusterError) -> PoolKey {
        var status = stat()
        guard lstat(path, &status) == 0 else {
            throw ClusterError(.keyFile, "key file \(path): \(String(cString: strerror(errno)))")
        }
        guard status.st_mode & S_IFMT == S_IFREG else {
            throw ClusterError(.keyFile, "key file \(path) is not a regular file")
        }
        guard status.st_uid == geteuid() else {
            throw ClusterError(.keyFile, "key file \(path) is owned by uid \(status.st_uid), not by this user (\(geteuid()))")
        }
        guard status.st_mode & 0o077 == 0 else {
            throw ClusterError(.keyFile, "key file \(path) has mode \(String(status.st_mode & 0o777, radix: 8)); it must be 0600 (chmod 600 \(path))")
        }
        let directory = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        var directoryStatus = stat()
        guard stat(directory.isEmpty ? "/" : directory, &directoryStatus) == 0 else {
            throw ClusterError(.keyFile, "key directory \(directory): \(String(cString: strerror(errno)))")
        }
        guard directoryStatus.st_uid == geteuid(), directoryStatus.st_mode & 0o077 == 0 else {
            throw ClusterError(.keyFile, "key directory \(directory) has mode \(String(directoryStatus.st_mode & 0o777, radix: 8)) and owner \(directoryStatus.st_uid); it must be 0700 and this user's")
        }
        guard let data = FileManager.default.contents(atPath: path), data.count < 1024 else {
            throw ClusterError(.keyFile, "key file \(path) cannot be read")
        }
        do {
            return try PoolKey(hex: String(decoding: data, as: UTF8.self))
        } catch {
            throw ClusterError(.keyFile, "key file \(path): \(error.detail)")
        }
    }

    /// An agent's key: from the file `WORKERS_KEY_FILE` names, or else from `WORKERS_KEY`. Both
    /// variables are removed from the environment, so the workers the agent starts, and their
    /// children, never see them.
    public static func fromAgentEnvironment() throws(ClusterError) -> PoolKey {
        defer {
            unsetenv(fileVariable)
            unsetenv(environmentVariable)
        }
        if let path = getenv(fileVariable).map({ String(cString: $0) }) {
            return try load(file: path)
        }
        if let text = getenv(environmentVariable).map({ String(cString: $0) }) {
            return try PoolKey(hex: text)
        }
        throw ClusterError(.keyFile, "no pool key: set \(fileVariable) to the key file's path (or \(environmentVariable) to the key)")
    }
}

/// A key that is never mutated after it is made, so it is shared across threads as it is.
struct SendableKey: @unchecked Sendable {  // @unchecked: SymmetricKey is immutable storage.
    let key: SymmetricKey
}

/// Lower-case hex, two digits a byte: keys, digests, directory names.
func hexString<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
    let digits = Array("0123456789abcdef".utf8)
    var text: [UInt8] = []
    for byte in bytes {
        text.append(digits[Int(byte >> 4)])
        text.append(digits[Int(byte & 0x0F)])
    }
    return String(decoding: text, as: UTF8.self)
}
