import Foundation
import WorkersCore

/// The CPython interpreters the lab can compare with, and whether each has the GIL.
///
/// CPython's GIL is optional since 3.13 (PEP 703): a free-threaded build (`python3.13t`,
/// `python3.14t`) runs threads of Python code in parallel. `sys._is_gil_enabled()` says whether
/// the running interpreter has it on (a free-threaded build can turn it back on, with
/// `PYTHON_GIL=1` or an extension that needs it); interpreters without the function have a GIL.
public struct PythonInterpreter: Sendable, Equatable {
    /// The executable.
    public var path: String
    /// `sys.version`'s first word, e.g. `3.14.0`.
    public var version: String
    /// Whether it runs with the GIL.
    public var gilEnabled: Bool

    /// The names searched for on PATH for a free-threaded interpreter, newest first.
    public static let freeThreadedNames = ["python3.14t", "python3.13t"]

    /// What `path` is, by running it; `nil` when it does not run as a Python 3.
    public static func probe(_ path: String) -> PythonInterpreter? {
        let script = "import sys; print(sys.version.split()[0]); print(int(getattr(sys, '_is_gil_enabled', lambda: True)()))"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = ["-c", script]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return nil }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return parse(path: path, status: process.terminationStatus, output: String(decoding: data, as: UTF8.self))
    }

    /// The probe's answer read (two lines: the version, then 1 or 0 for the GIL). Pure.
    static func parse(path: String, status: Int32, output: String) -> PythonInterpreter? {
        let lines = output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        guard status == 0, lines.count >= 2, let gil = Int(lines[1]), lines[0].first?.isNumber == true else { return nil }
        return PythonInterpreter(path: path, version: lines[0], gilEnabled: gil != 0)
    }

    /// A free-threaded interpreter to run beside `main` (the one the lab compares with): `main`
    /// itself when it is one, else the first of ``freeThreadedNames`` on PATH that runs without
    /// the GIL. Also returns what was looked at, for the report to name when none is found.
    static func findFreeThreaded(main: PythonInterpreter?, lookup: (String) -> String? = executablePath,
                                        probe: (String) -> PythonInterpreter? = probe) -> (found: PythonInterpreter?, lookedFor: [String]) {
        var looked: [String] = []
        if let main {
            looked.append("\(main.path) (\(main.version), GIL \(main.gilEnabled ? "on" : "off"))")
            if !main.gilEnabled { return (main, looked) }
        }
        for name in freeThreadedNames {
            guard let path = lookup(name) else {
                looked.append("\(name) (not on PATH)")
                continue
            }
            guard let interpreter = probe(path) else {
                looked.append("\(path) (does not run)")
                continue
            }
            if !interpreter.gilEnabled { return (interpreter, looked) }
            looked.append("\(path) (\(interpreter.version), GIL on)")
        }
        return (nil, looked)
    }
}

extension LabCell {
    /// A CPython cell as the free-threaded interpreter's: its own mode ids (`cpython-ft-…`),
    /// labels and source, so it stands beside the GIL interpreter's.
    func asFreeThreaded(version: String) -> LabCell {
        var cell = self
        cell.mode = mode.freeThreaded
        cell.label = label.hasPrefix("CPython") ? "CPython \(version) no GIL" + label.dropFirst("CPython".count) : "CPython \(version) no GIL"
        cell.source = .cpythonFreeThreaded
        return cell
    }
}
