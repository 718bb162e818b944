import Foundation
import Testing
@testable import WorkersLab

/// The lab's modes are a type: every mode has one stable id, the ids the CPython peer prints
/// decode, and an id no mode has is a decoding error, not a mode nobody switches over.
@Suite struct LabModeTests {
    static let all: [LabMode] = [.serial, .asyncOneThread, .threads, .threadsUnderSimulatedGIL, .processes, .poolStart]
        + LabMode.Python.allCases.flatMap { [LabMode.cpython($0), .cpythonFreeThreaded($0)] }

    @Test func everyModeRoundTripsThroughItsID() throws {
        #expect(Set(Self.all.map(\.rawValue)).count == Self.all.count)
        for mode in Self.all {
            #expect(LabMode(rawValue: mode.rawValue) == mode)
            let json = try JSONEncoder().encode(mode)
            #expect(try JSONDecoder().decode(LabMode.self, from: json) == mode)
        }
        #expect(LabMode.threadsUnderSimulatedGIL.rawValue == "threads-gil")
        #expect(LabMode.cpython(.asyncio).rawValue == "cpython-asyncio")
        #expect(LabMode.cpythonFreeThreaded(.threads).rawValue == "cpython-ft-threads")
    }

    @Test func anUnknownIDIsADecodingError() {
        for id in ["", "thread", "cpython-", "cpython-ft-gil", "cpython", "ft-threads"] {
            #expect(LabMode(rawValue: id) == nil, "\(id)")
        }
        #expect(throws: DecodingError.self) { try JSONDecoder().decode([LabMode].self, from: Data(#"["threads","no-such-mode"]"#.utf8)) }
    }

    @Test func kindsAndTheOneAtATimeRuleFollowTheSource() {
        #expect(LabMode.cpython(.threads).kind == .threads)
        #expect(LabMode.cpython(.asyncio).kind == .oneThreadAsync)
        #expect(LabMode.cpython(.threads).runsOneTaskAtATimeOnCPU)  // CPython's GIL
        #expect(!LabMode.cpythonFreeThreaded(.threads).runsOneTaskAtATimeOnCPU)  // none
        #expect(!LabMode.threads.runsOneTaskAtATimeOnCPU && LabMode.threadsUnderSimulatedGIL.runsOneTaskAtATimeOnCPU)
        #expect(LabMode.cpython(.processes).freeThreaded == .cpythonFreeThreaded(.processes))
        #expect(LabMode.processes.freeThreaded == .processes)
    }
}
