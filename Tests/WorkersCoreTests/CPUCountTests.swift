import Foundation
import Testing
@testable import WorkersCore

@Suite struct CPUCountTests {
    @Test(arguments: [
        ("max 100000", nil),
        ("200000 100000", 2),
        ("150000 100000", 2),
        ("50000 100000", 1),
        ("100000 100000\n", 1),
        ("garbage", nil),
        ("-1 100000", nil),
    ] as [(String, Int?)])
    func parsesCgroupV2CPUMax(text: String, expected: Int?) {
        #expect(CPUCount.parseCPUMax(text) == expected)
    }

    @Test func isPositiveAndAtMostTheOnlineCPUs() {
        #expect(cpuCount >= 1)
        #expect(cpuCount <= ProcessInfo.processInfo.processorCount)
    }

    @Test func honoursAQuotaInAFakeCgroupTree() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        try "100000 100000\n".write(to: root.appendingPathComponent("cpu.max"), atomically: true, encoding: .utf8)
        #expect(CPUCount.compute(cgroupRoot: root.path) == 1)
    }
}
