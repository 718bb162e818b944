import Foundation
import Testing
import WorkersCore
@testable import WorkersLab

/// Free-threaded CPython (PEP 703): finding one, and what the lab says with and without it.
@Suite struct FreeThreadedTests {
    let gilPython = PythonInterpreter(path: "/usr/bin/python3", version: "3.11.2", gilEnabled: true)

    @Test func theProbesAnswerIsRead() {
        #expect(PythonInterpreter.parse(path: "p", status: 0, output: "3.14.0\n0\n") == PythonInterpreter(path: "p", version: "3.14.0", gilEnabled: false))
        #expect(PythonInterpreter.parse(path: "p", status: 0, output: "3.11.2\n1\n")?.gilEnabled == true)
        #expect(PythonInterpreter.parse(path: "p", status: 1, output: "3.11.2\n1\n") == nil)
        #expect(PythonInterpreter.parse(path: "p", status: 0, output: "Traceback\n") == nil)
    }

    @Test func aFreeThreadedInterpreterOnPathIsFound() {
        let free = PythonInterpreter(path: "/opt/bin/python3.14t", version: "3.14.0", gilEnabled: false)
        let found = PythonInterpreter.findFreeThreaded(main: gilPython, lookup: { $0 == "python3.14t" ? free.path : nil }, probe: { $0 == free.path ? free : nil })
        #expect(found.found == free)
        // One that turned its GIL back on (PYTHON_GIL=1) is not one; the next name is tried.
        let gilOn = PythonInterpreter(path: "/opt/bin/python3.14t", version: "3.14.0", gilEnabled: true)
        let none = PythonInterpreter.findFreeThreaded(main: gilPython, lookup: { $0 == "python3.14t" ? gilOn.path : nil }, probe: { _ in gilOn })
        #expect(none.found == nil)
        #expect(none.lookedFor == ["/usr/bin/python3 (3.11.2, GIL on)", "/opt/bin/python3.14t (3.14.0, GIL on)", "python3.13t (not on PATH)"])
        // --python pointing at a free-threaded build: that one.
        let given = PythonInterpreter(path: "/x/python", version: "3.13.1", gilEnabled: false)
        #expect(PythonInterpreter.findFreeThreaded(main: given, lookup: { _ in nil }).found == given)
    }

    /// On this machine: its python3 has the GIL (3.11 has no `sys._is_gil_enabled`, which means
    /// a GIL); a free-threaded one is found only where one is installed.
    @Test func detectionOnThisMachine() throws {
        let path = try #require(executablePath("python3"), "python3 is installed by .ci/run")
        let python = try #require(PythonInterpreter.probe(path))
        #expect(python.gilEnabled)
        #expect(python.version.hasPrefix("3."))
        let search = PythonInterpreter.findFreeThreaded(main: python)
        if let found = search.found {
            #expect(!found.gilEnabled)
        } else {
            #expect(search.lookedFor.count == 1 + PythonInterpreter.freeThreadedNames.count)
            #expect(search.lookedFor.first?.hasSuffix("GIL on)") == true)
        }
    }

    @Test func recordedFreeThreadedNumbersAreConcluded() {
        var machine = LabReport.Machine(cpus: 2, os: "Linux", python: "Python 3.11.2")
        machine.freeThreadedPython = "3.14.0 at /opt/bin/python3.14t"
        let gil = LabCell(workload: .cpu, mode: .cpython(.threads), label: "CPython threading (2 threads)", workers: 2, wallSeconds: 1,
                          speedup: 1.0, cpuPerWall: 1, source: .cpython)
        let free = gil.asFreeThreaded(version: "3.14.0")
        #expect(free.mode == .cpythonFreeThreaded(.threads) && free.source == .cpythonFreeThreaded)
        #expect(free.label == "CPython 3.14.0 no GIL threading (2 threads)")
        var scaled = free
        scaled.speedup = 1.85
        let text = Conclusions.draw(cells(python: (threads: 1.0, processes: 1.9)) + [scaled], config: config, machine: machine).joined(separator: "\n")
        #expect(text.contains("Free-threaded CPython (3.14.0 at /opt/bin/python3.14t): threads ran the CPU-bound tasks 1.85× on 2 threads, where CPython with the GIL ran 1×"))
        #expect(text.contains("without the GIL, threads run Python code on several cores at once"))
        var flat = free
        flat.speedup = 1.05
        let flatText = Conclusions.draw(cells(python: (threads: 1.0, processes: 1.9)) + [flat], config: config, machine: machine).joined(separator: "\n")
        #expect(flatText.contains("short of what 2 cores allow"))
        #expect(!flatText.contains("on several cores at once"))
        // Its threads may run in parallel (no one-at-a-time bound); its serial run may not.
        let judged = Settling.judge([scaled, free.with(mode: .cpythonFreeThreaded(.serial), speedup: 1.6)], config: config, cpus: 2)
        #expect(judged[0].unsettled == nil)
        #expect(judged[1].unsettled != nil)
    }

    @Test func noneFoundIsSaidWithWhatWasLookedAt() {
        var machine = LabReport.Machine(cpus: 2, os: "Linux", python: "Python 3.11.2")
        machine.freeThreadedLookedFor = ["/usr/bin/python3 (3.11.2, GIL on)", "python3.14t (not on PATH)", "python3.13t (not on PATH)"]
        let text = Conclusions.draw(cells(python: (threads: 1.0, processes: 1.9)), config: config, machine: machine).joined(separator: "\n")
        #expect(text.contains("No free-threaded CPython (PEP 703, no GIL) was found, so its threads are not measured here; looked at: /usr/bin/python3 (3.11.2, GIL on); python3.14t (not on PATH); python3.13t (not on PATH)."))
        let json = String(decoding: try! JSONEncoder().encode(machine), as: UTF8.self)
        #expect(json.contains("\"free_threaded_looked_for\""))
    }
}

extension LabCell {
    func with(mode: LabMode, speedup: Double) -> LabCell {
        var cell = self
        cell.mode = mode
        cell.speedup = speedup
        return cell
    }
}
