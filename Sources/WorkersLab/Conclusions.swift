import Foundation

/// Sentences drawn from the measured cells: every number in them comes from this run, and a
/// sentence changes its verdict when the numbers do — none is printed regardless. A sentence
/// whose cells are unsettled (``Settling``) draws no verdict: it says the machine was too busy
/// for that comparison, and how busy.
enum Conclusions {
    static func draw(_ cells: [LabCell], config: LabReport.Config, machine: LabReport.Machine? = nil) -> [String] {
        let table = Table(cells: cells)
        var lines: [String] = []
        let x = { (value: Double) in format(value) + "×" }
        let busy = machine?.busyText ?? "no load figures"
        /// The sentence for a comparison with an unsettled cell, or `nil` when all are settled.
        func unsettled(_ subject: String, _ used: LabCell?...) -> String? {
            let disturbed = used.compactMap { $0 }.filter { $0.unsettled != nil }
            guard !disturbed.isEmpty else { return nil }
            let reasons = disturbed.map { "\($0.label) \($0.unsettled!)" }.joined(separator: "; ")
            return "\(subject): unsettled — \(reasons). The machine was too busy for this comparison (\(busy)), so no lesson is drawn from it."
        }

        let all = cells.filter { $0.unsettled != nil }
        if !all.isEmpty {
            lines.append(
                "\(all.count) cell\(all.count == 1 ? " is" : "s are") unsettled (marked ? in the tables): "
                + all.map { "\($0.label) on \($0.workload.rawValue)" }.joined(separator: ", ")
                + ". A speed-up beyond what a mode's workers can give is a disturbed run, not a result (\(busy))."
            )
        }

        // 1–2. Concurrency: threads and one-thread async on I/O-bound work.
        if let threads = table[.ioSleep, .threads], let async1 = table[.ioSleep, .asyncOneThread] {
            lines.append(unsettled("I/O-bound (\(config.ioTasks) sleeps)", threads, async1) ?? (
                "I/O-bound (\(config.ioTasks) sleeps of \(format(config.ioSleepMs)) ms): \(threads.label) was \(x(threads.speedup)) faster than serial "
                + "and async tasks on one thread \(x(async1.speedup)) — "
                + (async1.speedup >= LabThresholds.overlapShare * Double(config.ioTasks)
                    ? "concurrency is one worker switching while the others wait; it needs no second core."
                    : "less than the \(config.ioTasks)× that switching while waiting allows; this machine was busy.")
            ))
        }
        if let net = table[.ioNet, .threads], let netAsync = table[.ioNet, .asyncOneThread] {
            lines.append(unsettled("Real I/O (\(config.ioTasks) requests)", net, netAsync)
                ?? "Real I/O (\(config.ioTasks) requests to a loopback server answering after \(format(config.netLatencyMs)) ms): threads \(x(net.speedup)), one thread with non-blocking sockets \(x(netAsync.speedup)).")
        }
        // 3. CPU-bound work: Swift threads, under the GIL, one thread.
        if let threads = table[.cpu, .threads], let gil = table[.cpu, .threadsUnderSimulatedGIL] {
            let gilVerdict = abs(gil.speedup - 1) <= LabThresholds.gilTolerance
                ? "one thread runs at a time, so threads do not speed up CPU-bound work under a GIL"
                : "not the 1.0× a GIL should allow; the simulation was disturbed"
            lines.append(unsettled("CPU-bound (\(config.cpuTasks) tasks)", threads, gil) ?? (
                "CPU-bound (\(config.cpuTasks) tasks): Swift threads, which have no GIL, ran \(x(threads.speedup)) on \(threads.workers) threads; "
                + "under the simulated GIL (\(format(config.switchIntervalMs)) ms switch interval) \(x(gil.speedup)) — \(gilVerdict)."
            ))
        }
        if let async1 = table[.cpu, .asyncOneThread] {
            lines.append(unsettled("Async tasks on one thread, CPU-bound", async1) ?? (async1.speedup >= 1 - LabThresholds.gilTolerance
                ? "Async tasks on one thread ran the CPU-bound tasks at \(x(async1.speedup)): with nothing to wait for, switching gains nothing."
                : "Async tasks on one thread ran the CPU-bound tasks at \(x(async1.speedup)), slower than serial: with nothing to wait for, switching only costs, or the machine was busy (\(busy))."))
        }
        // 4. Processes.
        if let processes = table[.cpu, .processes] {
            let cores = min(processes.workers, machine?.cpus ?? config.workers)
            let verdict = processes.speedup >= LabThresholds.parallelShare * Double(cores)
                ? "each has its own interpreter and lock, so every core works"
                : "short of \(cores)× on \(cores) cores; start-up or a busy machine took the rest"
            lines.append(unsettled("Processes, CPU-bound", processes)
                ?? "Processes: \(processes.label) ran the CPU-bound tasks \(x(processes.speedup)) faster than serial — \(verdict).")
        }
        // Mixed: the convoy effect.
        if let gil = table[.mixed, .threadsUnderSimulatedGIL], let late = gil.probeMedianMs {
            var line = "Mixed: a 1 ms sleep woke \(format(late)) ms late (median) behind one CPU thread under the simulated GIL"
            let ratio = late / config.switchIntervalMs
            line += LabThresholds.convoyRange.contains(ratio)
                ? ", about one switch interval (\(format(config.switchIntervalMs)) ms): the convoy effect"
                : ", \(format(ratio))× the switch interval"
            if let threads = table[.mixed, .threads]?.probeMedianMs { line += "; \(format(threads)) ms behind a Swift thread with no GIL" }
            if let processes = table[.mixed, .processes]?.probeMedianMs { line += "; \(format(processes)) ms behind a CPU process" }
            lines.append(line + ".")
        }
        // The scaling curves.
        for workload in [LabWorkload.cpuScaling, .ioScaling] {
            if let line = ScalingCurve.conclusion(cells, workload: workload, config: config, cpus: machine?.cpus ?? config.workers) { lines.append(line) }
        }
        if let line = DataAnalysis.conclusion(cells, config: config, cpus: machine?.cpus ?? config.workers) { lines.append(line) }
        if let line = ConvoyCurve.conclusion(cells, config: config) { lines.append(line) }
        // CPython side by side.
        let pairs: [(LabWorkload, LabMode, LabMode, String)] = [
            (.ioSleep, .cpython(.threads), .threads, "threads on I/O"),
            (.cpu, .cpython(.threads), .threadsUnderSimulatedGIL, "threads on CPU (vs the simulated GIL)"),
            (.cpu, .cpython(.processes), .processes, "processes on CPU"),
        ]
        var agreements: [String] = []
        var worst = 0.0
        for (workload, pythonMode, swiftMode, name) in pairs {
            guard let python = table[workload, pythonMode], python.speedup > 0, let swift = table[workload, swiftMode], swift.speedup > 0,
                  python.unsettled == nil, swift.unsettled == nil else { continue }
            let difference = abs(python.speedup / swift.speedup - 1)
            worst = max(worst, difference)
            agreements.append("\(name) \(x(python.speedup)) (Swift \(x(swift.speedup)), \(format(difference * 100)) % apart)")
        }
        if !agreements.isEmpty {
            lines.append((worst <= LabThresholds.agreement ? "CPython agrees: " : "CPython differs by more than 15 % somewhere: ") + agreements.joined(separator: "; ") + ".")
            // Parallel runs that kept the CPUs busy yet gained less: each core ran slower with the
            // other busy (shared physical cores, caches, memory bandwidth) — a property of the
            // machine and of the loop, which CPU ÷ wall against speed-up shows.
            if let python = table[.cpu, .cpython(.processes)], let swift = table[.cpu, .processes],
               python.cpuPerWall > 0, swift.cpuPerWall > 0 {
                let pythonEfficiency = python.speedup / python.cpuPerWall
                let swiftEfficiency = swift.speedup / swift.cpuPerWall
                // Only the case it explains: CPUs busy (CPU ÷ wall near the workers) yet a speed-up
                // well short of it. Above 1.0, the serial run was the slow one, not the parallel.
                let lower = min(pythonEfficiency, swiftEfficiency)
                if lower < 0.85, max(pythonEfficiency, swiftEfficiency) <= 1.05, abs(pythonEfficiency - swiftEfficiency) > 0.15 {
                    let slower = pythonEfficiency < swiftEfficiency ? "CPython's" : "Swift's"
                    lines.append(
                        "Processes kept \(format(python.cpuPerWall)) CPUs busy in CPython for \(x(python.speedup)) and \(format(swift.cpuPerWall)) in Swift for \(x(swift.speedup)): "
                        + "\(slower) loop ran slower with both CPUs busy (\(format(min(pythonEfficiency, swiftEfficiency) * 100)) % of its speed alone vs \(format(max(pythonEfficiency, swiftEfficiency) * 100)) %) — "
                        + "the CPUs share execution resources (on a VM, often two threads of one core), which an interpreter's loop feels more than a tight arithmetic one."
                    )
                }
            }
        } else if let note = cells.first(where: { $0.source == .cpython && $0.wallSeconds == 0 && $0.note != nil })?.note {
            lines.append("CPython: \(note); its columns are empty.")
        }
        // Free-threaded CPython (PEP 703): the same threads without the GIL.
        if let freeThreads = table[.cpu, .cpythonFreeThreaded(.threads)] {
            let withGIL = table[.cpu, .cpython(.threads)]
            let cores = max(1, min(freeThreads.workers, machine?.cpus ?? config.workers))
            let compared = withGIL.map { ", where CPython with the GIL ran \(x($0.speedup)) on as many threads" } ?? ""
            let verdict = cores > 1 && freeThreads.speedup > LabThresholds.scales
                ? "without the GIL, threads run Python code on several cores at once, as processes do"
                : cores == 1 ? "one CPU cannot show parallelism" : "short of what \(cores) cores allow: the threads still ran mostly one at a time (a GIL turned back on, or a busy machine)"
            lines.append(unsettled("Free-threaded CPython, CPU-bound", freeThreads, withGIL)
                ?? "Free-threaded CPython (\(machine?.freeThreadedPython ?? "no GIL")): threads ran the CPU-bound tasks \(x(freeThreads.speedup)) on \(freeThreads.workers) threads\(compared) — \(verdict).")
        } else if let looked = machine?.freeThreadedLookedFor, machine?.freeThreadedPython == nil, !looked.isEmpty {
            lines.append("No free-threaded CPython (PEP 703, no GIL) was found, so its threads are not measured here; looked at: \(looked.joined(separator: "; ")).")
        }
        if let io = table[.ioSleep, .threads], let gil = table[.cpu, .threadsUnderSimulatedGIL], let processes = table[.cpu, .processes],
           [io, gil, processes].contains(where: { $0.unsettled != nil }) {
            lines.append("This run cannot settle the rule of thumb (threads for I/O, processes for CPU): a cell it rests on is unsettled (\(busy)); run it again on a quieter machine.")
        } else if let io = table[.ioSleep, .threads], let gil = table[.cpu, .threadsUnderSimulatedGIL], let processes = table[.cpu, .processes] {
            let rule = io.speedup > 2 && gil.speedup < LabThresholds.scales && processes.speedup > LabThresholds.scales
            lines.append(rule
                ? "So, under a GIL: threads (or async) for I/O-bound work (\(x(io.speedup))), processes for CPU-bound work (\(x(processes.speedup)) vs \(x(gil.speedup)) for threads)."
                : "This run does not bear out the rule of thumb (threads \(x(io.speedup)) on I/O, \(x(gil.speedup)) on CPU under the GIL, processes \(x(processes.speedup))); run it again on a quieter machine.")
        }
        return lines
    }

    /// Two significant figures or so: 7.9, 1.02, 0.06, 812.
    static func format(_ value: Double) -> String {
        let magnitude = abs(value)
        let digits = magnitude >= 100 ? 0 : magnitude >= 10 ? 1 : magnitude >= 0.1 ? 2 : 3
        var text = String(format: "%.\(digits)f", value)
        if text.contains(".") {
            while text.hasSuffix("0") { text.removeLast() }
            if text.hasSuffix(".") { text.removeLast() }
        }
        return text
    }

    struct Table {
        let cells: [LabCell]
        subscript(workload: LabWorkload, mode: LabMode) -> LabCell? {
            cells.first { $0.workload == workload && $0.mode == mode && $0.wallSeconds > 0 }
        }
    }
}
