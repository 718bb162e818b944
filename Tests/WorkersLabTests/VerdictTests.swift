import Foundation
import Testing
@testable import WorkersLab

/// Each section's claim gets the verdict its cells give: confirmed, contradicted with why, or
/// unsettled — never a lesson from a disturbed cell.
@Suite struct VerdictTests {
    let machine = LabReport.Machine(cpus: 2, os: "Linux", python: nil)

    func outcome(_ cells: [LabCell], _ workload: LabWorkload, machine: LabReport.Machine? = nil) -> LabVerdict? {
        Verdicts.judge(cells, config: config, machine: machine ?? self.machine).first { $0.workload == workload }
    }

    @Test func aQuietRunConfirmsEveryClaim() {
        let verdicts = Verdicts.judge(cells(), config: config, machine: machine)
        #expect(verdicts.map(\.workload) == [.ioSleep, .cpu, .mixed])
        #expect(verdicts.allSatisfy { $0.outcome == .confirmed })
        #expect(verdicts.first { $0.workload == .cpu }?.because.contains("threads-gil 1×") == true)
    }

    @Test func numbersThatSayOtherwiseContradictWithWhy() {
        let io = outcome(cells(ioThreads: 2.1), .ioSleep)
        #expect(io?.outcome == .contradicted)
        #expect(io?.because.contains("threads below 6×") == true)
        let cpu = outcome(cells(cpuGIL: 1.7, cpuProcesses: 1.1), .cpu)
        #expect(cpu?.outcome == .contradicted)
        #expect(cpu?.because.contains("threads-gil ran 1.7×, not about 1×") == true)
        #expect(cpu?.because.contains("processes ran 1.1× with 1 CPUs busy, below the 1.5× that several of the 2 cores give") == true)
        // A pool's start-up in a short run (1.64× on 2 cores) is still parallelism.
        #expect(outcome(cells(cpuProcesses: 1.64), .cpu)?.outcome == .confirmed)
        #expect(outcome(cells(probeGIL: 40), .mixed)?.outcome == .contradicted)
        // CPython's cells count too when it ran.
        #expect(outcome(cells(python: (threads: 1.6, processes: 1.9)), .cpu)?.outcome == .contradicted)
    }

    /// Processes that kept both CPUs busy at once but gained less (two CPUs sharing one core's
    /// execution resources) ran in parallel: the verdict says so instead of contradicting.
    @Test func processesThatKeepTheCPUsBusyButGainLessAreStillParallel() throws {
        var shared = cells(python: (threads: 1.0, processes: 1.4))
        for index in shared.indices where shared[index].mode == .cpython(.processes) { shared[index].cpuPerWall = 1.8 }
        let cpu = try #require(outcome(shared, .cpu))
        #expect(cpu.outcome == .confirmed)
        #expect(cpu.because.contains("kept 1.8 CPUs busy at once for 1.4×: each CPU ran slower with the other busy"))
        // Both CPUs busy but no gain to speak of is not parallelism that pays.
        var busyForNothing = cells(python: (threads: 1.0, processes: 1.1))
        for index in busyForNothing.indices where busyForNothing[index].mode == .cpython(.processes) { busyForNothing[index].cpuPerWall = 1.9 }
        #expect(try #require(outcome(busyForNothing, .cpu)).outcome == .contradicted)
    }

    /// A claim that fails while other programs keep the CPUs busy is left open, not contradicted:
    /// the hogs, not the mode, slowed it. On a quiet machine the same numbers contradict it.
    @Test func aBusyMachineCannotContradictAClaim() throws {
        var busy = machine
        busy.otherCPUs = 1.9
        let cpu = try #require(outcome(cells(cpuProcesses: 1.1), .cpu, machine: busy))
        #expect(cpu.outcome == .unsettled)
        #expect(cpu.because.contains("other programs kept 1.9 of 2 CPUs busy"))
        #expect(cpu.because.contains("so this run cannot contradict the claim"))
        var quiet = machine
        quiet.otherCPUs = 0.05
        #expect(outcome(cells(cpuProcesses: 1.1), .cpu, machine: quiet)?.outcome == .contradicted)
        // A claim the numbers confirm stays confirmed however busy the machine.
        #expect(outcome(cells(), .cpu, machine: busy)?.outcome == .confirmed)
    }

    /// The false lesson the issue names: a disturbed cell must not become a verdict either way.
    @Test func anUnsettledCellGivesNoVerdict() {
        var disturbed = cells(cpuProcesses: 0.9)
        for index in disturbed.indices where disturbed[index].mode == .processes { disturbed[index].unsettled = "its rounds gave 0.5×, 1.9×, 1.2×" }
        let cpu = outcome(disturbed, .cpu)
        #expect(cpu?.outcome == .unsettled)
        #expect(cpu?.because.contains("its rounds gave") == true)
        // One CPU cannot show parallelism: no verdict on the processes claim.
        let one = LabReport.Machine(cpus: 1, os: "Linux", python: nil)
        #expect(outcome(cells(cpuProcesses: 1.0), .cpu, machine: one)?.outcome == .unsettled)
    }

    @Test func theVerdictIsRenderedAfterItsSection() {
        let verdict = LabVerdict(workload: .cpu, claim: "Claim.", outcome: .contradicted, because: "numbers")
        #expect(TerminalReport.verdict(verdict) == "\nclaim: Claim.\nverdict: contradicted — numbers\n")
        let report = LabReport(machine: machine, config: config, cells: cells(), conclusions: [], verdicts: [verdict])
        let html = HTMLReport.render(report)
        #expect(html.contains("<p class=\"claim\">Claim: Claim.</p>"))
        #expect(html.contains("<p class=\"verdict contradicted\"><strong>Contradicted</strong> — numbers</p>"))
    }

    /// The report opens with concurrency and parallelism on two of the run's own timelines.
    @Test func theReportOpensWithConcurrencyAndParallelism() {
        let opening = HTMLReport.distinction(cells(ioAsync: 7.8, cpuProcesses: 1.9))
        #expect(opening.contains("<h2>Concurrency is not parallelism</h2>"))
        #expect(opening.contains("Concurrency: async-1 ran the I/O-bound tasks 7.8× faster than serial on one thread"))
        #expect(opening.contains("Parallelism: processes ran the CPU-bound tasks 1.9× faster than serial"))
        #expect(opening.components(separatedBy: "<svg").count == 3)
        #expect(HTMLReport.distinction(cells().filter { $0.workload == .cpu }).isEmpty)
        let report = LabReport(machine: machine, config: config, cells: cells(), conclusions: ["A sentence."])
        let html = HTMLReport.render(report)
        #expect(html.range(of: "Concurrency is not parallelism")!.lowerBound < html.range(of: "<h2>Conclusions</h2>")!.lowerBound)
    }
}
