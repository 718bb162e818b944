import Foundation

/// Runs the lab's workloads in real CPython and reads back its cells. The peer is
/// `Sources/WorkersLab/lab_peer.py`, one self-contained Python 3.8+ file (standard library only),
/// compiled into the binary as bytes (``source``) and written to a temporary file to run: it reads
/// a JSON config on stdin and writes the cells it measured, as JSON, on stdout.
struct CPythonPeer {
    let python: String

    /// The peer's source, as the package embeds it.
    static var source: [UInt8] { PackageResources.lab_peer_py }

    /// `python3 --version`, e.g. "Python 3.11.7"; `nil` if it does not run.
    func version() -> String? {
        guard let (status, output, _) = try? run([python, "--version"], input: Data()), status == 0 else { return nil }
        return String(decoding: output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Runs `workloads` with the same sizes as the Swift side.
    func run(config: LabReport.Config, workloads: [LabWorkload], port: UInt16?) throws -> [LabCell] {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("workers-lab-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let script = directory.appendingPathComponent("lab_peer.py")
        try Data(Self.source).write(to: script)

        let settings: [String: Any] = [
            "workers": config.workers,
            "io_tasks": config.ioTasks,
            "io_sleep_s": config.ioSleepMs / 1_000,
            "net_port": port.map { Int($0) } ?? NSNull(),
            "net_requests": config.ioTasks,
            "cpu_tasks": config.cpuTasks,
            "cpu_task_s": config.cpuTaskMs / 1_000,
            "switch_interval_s": config.switchIntervalMs / 1_000,
            "probe_count": config.probeCount,
            "probe_sleep_s": 0.001,
            "convoy_cell_s": (config.convoyCellMs ?? 0) / 1_000,
            "convoy_min_sleeps": LabThresholds.convoyMinimumSleeps,
            // The lab's own rounds pair each CPython cell with the serial run of its round; one
            // run a round is enough then (two back to back when the lab runs one round).
            "cpu_rounds": config.rounds > 1 ? 1 : 2,
            "scaling_widths": config.scalingWidths,
            "convoy_widths": config.widths(.convoy),
            "io_scaling_widths": config.ioScalingWidths,
            "scaling_cpu_tasks": config.scalingTasks,
            "scaling_cpu_task_s": config.scalingTaskMs / 1_000,
            "scaling_io_tasks": config.ioScalingTasks,
            "scaling_io_sleep_s": config.ioScalingSleepMs / 1_000,
            "data_sizes": config.dataSizes,
            "data_tasks": config.dataTasks,
            "data_stride": config.dataStride,
            "data_repeats": config.dataRepeats,
            "workloads": workloads.map(\.rawValue),
        ]
        let input = try JSONSerialization.data(withJSONObject: settings)
        let (status, output, errors) = try run([python, script.path], input: input)
        guard status == 0 else {
            let last = String(decoding: errors, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? "no message"
            throw LabError("python3 exited with status \(status): \(last)")
        }
        do {
            return try JSONDecoder().decode([LabCell].self, from: output)
        } catch {
            throw LabError("python3's output is not the cells it should print: \(error)")
        }
    }

    /// Runs a program to its end with `input` on stdin; returns its status, stdout and stderr.
    private func run(_ arguments: [String], input: Data) throws -> (Int32, Data, Data) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: arguments[0])
        process.arguments = Array(arguments.dropFirst())
        let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        // Read both pipes while it runs, so neither fills up and stalls it.
        let errorData = LockedData()
        let errorReader = Thread { errorData.set(stderr.fileHandleForReading.readDataToEndOfFile()) }
        errorReader.start()
        stdin.fileHandleForWriting.write(input)
        try? stdin.fileHandleForWriting.close()
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, output, errorData.wait())
    }
}

/// stderr's bytes, handed from the thread that reads them.
private final class LockedData: @unchecked Sendable {  // @unchecked: guarded by `condition`.
    private let condition = NSCondition()
    private var data: Data?

    func set(_ value: Data) {
        condition.lock()
        data = value
        condition.broadcast()
        condition.unlock()
    }

    func wait() -> Data {
        condition.lock()
        defer { condition.unlock() }
        while data == nil { condition.wait() }
        return data ?? Data()
    }
}
