import Foundation
import Testing
@testable import WorkersLab

/// The lab's targets come from ``LabThresholds`` and the run's sizes, and travel in `--json`, so
/// `scripts/check-lab.sh` keeps no numbers of its own.
@Suite struct TargetTests {
    @Test func targetsAreComputedFromTheThresholdsAndTheSizes() throws {
        let config = Lab.defaultConfig(quick: false, workers: 2)
        let targets = LabTarget.targets(config: config, cpus: 2, workloads: LabWorkload.allCases, python: true)
        let threadsIO = try #require(targets.first { $0.workload == .ioSleep && $0.mode == .threads })
        #expect(threadsIO.atLeast == LabThresholds.overlapShare * Double(config.ioTasks))
        let gil = try #require(targets.first { $0.workload == .cpu && $0.mode == .threadsUnderSimulatedGIL })
        #expect(gil.atLeast == 1 - LabThresholds.gilTolerance && gil.atMost == 1 + LabThresholds.gilTolerance)
        let convoy = try #require(targets.first { $0.workload == .mixed && $0.mode == .threadsUnderSimulatedGIL })
        #expect(convoy.value == "probe_median_ms" && convoy.atMost == LabThresholds.convoyRange.upperBound * config.switchIntervalMs)
        // One agreement target per width of the CPU curve, CPython's threads against the simulated GIL.
        let widths = targets.filter { $0.workload == .cpuScaling }.compactMap(\.workers)
        #expect(widths == config.scalingWidths)
        #expect(targets.filter { $0.workload == .cpuScaling }.allSatisfy { $0.relativeTo == .threadsUnderSimulatedGIL })
        // Without CPython, no CPython targets; without a workload, none of its.
        let swiftOnly = LabTarget.targets(config: config, cpus: 2, workloads: [.cpu], python: false)
        #expect(swiftOnly.allSatisfy { $0.workload == .cpu && $0.relativeTo == nil })
    }

    @Test func aTargetTravelsInTheJSONCheckLabReads() throws {
        let target = LabTarget(name: "x", workload: .cpu, mode: .threads, workers: nil, value: "speedup", relativeTo: nil, atLeast: 0.85, atMost: 1.15)
        let json = String(decoding: try JSONEncoder().encode(target), as: UTF8.self)
        #expect(json.contains("\"at_least\":0.85") && json.contains("\"mode\":\"threads\""))
    }
}
