#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CWorkersShims

/// The number of CPUs this process may use: the smallest of the online CPUs, the CPUs in its
/// affinity mask (`taskset`, cpusets) and its cgroup CPU quota (`cpu.max` in cgroup v2,
/// `cpu.cfs_quota_us`/`cpu.cfs_period_us` in v1, rounded up), and at least 1.
///
/// libdispatch, and so Swift's default executor, honours affinity but not quotas: in a container
/// limited to 2 CPUs on a 64-core host it is 64 wide. Every default size in this package uses this
/// count instead. Read once, at first use.
public let cpuCount: Int = CPUCount.compute(cgroupRoot: "/sys/fs/cgroup")

/// How ``cpuCount`` is computed; exposed to the package so tests can point it at fake cgroup files.
package enum CPUCount {
    package static func compute(cgroupRoot: String) -> Int {
        var count = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        let affinity = Int(cworkers_affinity_cpu_count())
        if affinity > 0 { count = min(count, affinity) }
        if let quota = quotaCPUs(cgroupRoot: cgroupRoot) { count = min(count, quota) }
        return max(1, count)
    }

    /// CPUs allowed by the cgroup quota, rounded up, or `nil` when there is no quota.
    package static func quotaCPUs(cgroupRoot: String) -> Int? {
        // cgroup v2: "<quota> <period>" or "max <period>" in cpu.max of this process's cgroup.
        for path in cgroupV2Paths(cgroupRoot: cgroupRoot) {
            if let text = readSmallFile(path) {
                return parseCPUMax(text)
            }
        }
        // cgroup v1.
        if let quotaText = readSmallFile(cgroupRoot + "/cpu/cpu.cfs_quota_us"),
           let periodText = readSmallFile(cgroupRoot + "/cpu/cpu.cfs_period_us"),
           let quota = Int(quotaText.trimmed), let period = Int(periodText.trimmed) {
            return cpus(quota: quota, period: period)
        }
        return nil
    }

    /// Parses cgroup v2 `cpu.max`.
    package static func parseCPUMax(_ text: String) -> Int? {
        let fields = text.trimmed.split(separator: " ")
        guard fields.count == 2, fields[0] != "max", let quota = Int(fields[0]), let period = Int(fields[1]) else {
            return nil
        }
        return cpus(quota: quota, period: period)
    }

    static func cpus(quota: Int, period: Int) -> Int? {
        guard quota > 0, period > 0 else { return nil }
        return max(1, (quota + period - 1) / period)
    }

    /// `cpu.max` of this process's own cgroup (from /proc/self/cgroup), then of the root.
    static func cgroupV2Paths(cgroupRoot: String) -> [String] {
        var paths: [String] = []
        if let membership = readSmallFile("/proc/self/cgroup") {
            for line in membership.split(separator: "\n") where line.hasPrefix("0::") {
                let relative = line.dropFirst(3)
                if relative != "/" { paths.append(cgroupRoot + relative + "/cpu.max") }
            }
        }
        paths.append(cgroupRoot + "/cpu.max")
        return paths
    }

    package static func readSmallFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 4096)
        let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return nil }
        return String(decoding: bytes[0..<n], as: UTF8.self)
    }
}

extension StringProtocol {
    var trimmed: Substring {
        let scalars = self[...]
        let start = scalars.firstIndex(where: { !$0.isWhitespace }) ?? scalars.endIndex
        let end = scalars.lastIndex(where: { !$0.isWhitespace }).map { scalars.index(after: $0) } ?? start
        return Substring(scalars[start..<end])
    }
}
