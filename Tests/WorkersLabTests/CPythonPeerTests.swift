import Foundation
import Testing
import WorkersCore
@testable import WorkersLab

/// The CPython peer is a real Python file compiled into the binary: the bytes the lab writes out
/// are that file, CPython compiles them, and the peer's kernel computes what Swift's does, so the
/// two sides' checksums can be compared at all.
@Suite struct CPythonPeerTests {
    /// The file in the source tree, beside this package's sources.
    static let sourceFile = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Sources/WorkersLab/lab_peer.py")

    /// Runs `program` in `python` with the peer's path as its argument: its status and stdout.
    static func run(_ python: String, _ program: String) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = ["-c", program, sourceFile.path]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let printed = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, printed)
    }

    @Test func theEmbeddedPeerIsTheFile() throws {
        let file = try Data(contentsOf: Self.sourceFile)
        #expect(Data(CPythonPeer.source) == file)
        #expect(String(decoding: CPythonPeer.source.prefix(22), as: UTF8.self) == "#!/usr/bin/env python3")
    }

    @Test func cpythonCompilesThePeerAndItsKernelIsSwifts() throws {
        let python = try #require(Lab.findPython(), "python3 is installed by .ci/run")
        let seeds: [UInt64] = [1, 2, 7, 0xFFFF_FFFF]
        let iterations = 10_000
        let program = """
            import importlib.util, sys
            spec = importlib.util.spec_from_file_location("lab_peer", sys.argv[1])
            peer = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(peer)
            print(" ".join(str(peer.kernel(seed, \(iterations))) for seed in (\(seeds.map(String.init).joined(separator: ", ")))))
            """
        let (status, printed) = try Self.run(python, program)
        #expect(status == 0)
        let values = printed.split(whereSeparator: \.isWhitespace).compactMap { UInt64($0) }
        #expect(values == seeds.map { Kernel.run(seed: $0, iterations: iterations) })
    }

    /// The convoy's cells from real CPython threads, small: a cell per width (2 and 3 CPU
    /// threads), each with its probe's median, and the minimum of sleeps under a time limit.
    @Test func thePeersConvoyGivesACellPerWidth() throws {
        let python = try #require(Lab.findPython(), "python3 is installed by .ci/run")
        let program = """
            import importlib.util, json, sys
            spec = importlib.util.spec_from_file_location("lab_peer", sys.argv[1])
            peer = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(peer)
            cfg = dict(peer.DEFAULTS)
            cfg.update({"cpu_task_s": 0.01, "probe_count": 40, "convoy_widths": [2, 3], "convoy_cell_s": 0.001, "convoy_min_sleeps": \(LabThresholds.convoyMinimumSleeps), "scaling_widths": [1, 2, 3]})
            n = peer.calibrate(cfg["cpu_task_s"])
            print(json.dumps([c.to_json() for c in peer.convoy_workload(cfg, n)]))
            """
        let (status, printed) = try Self.run(python, program)
        #expect(status == 0)
        let cells = try JSONDecoder().decode([LabCell].self, from: Data(printed.utf8))
        #expect(cells.map(\.workload) == [.convoy, .convoy])
        #expect(cells.map(\.mode) == [.cpython(.threads), .cpython(.threads)])
        #expect(cells.map(\.workers) == [2, 3])
        for cell in cells {
            #expect(cell.wallSeconds > 0 && (cell.probeMedianMs ?? -1) >= 0)
            // The time limit (1 ms) stopped it after the sleeps it always makes.
            #expect(cell.note?.contains("probe: \(LabThresholds.convoyMinimumSleeps) x sleep(1 ms) behind \(cell.workers) CPU threads") == true, "\(cell.note ?? "")")
        }
    }

    @Test func thePeersDataWorkIsSwifts() throws {
        let python = try #require(Lab.findPython(), "python3 is installed by .ci/run")
        let block = (0..<5_000).map { UInt8(truncatingIfNeeded: ($0 &* 2_654_435_761) >> 24) }
        let program = """
            import importlib.util, sys
            spec = importlib.util.spec_from_file_location("lab_peer", sys.argv[1])
            peer = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(peer)
            block = bytes((i * 2654435761 >> 24) & 0xFF for i in range(5000))
            sys.stdout.write(peer.data_work(block, 8).hex())
            """
        let (status, printed) = try Self.run(python, program)
        #expect(status == 0)
        #expect(printed == DataJob.transform(block, stride: 8).map { String(format: "%02x", $0) }.joined())
    }
}
