#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import WorkersCluster
import WorkersCore
import WorkersProcesses
import WorkersTestJobs

@Suite("External placement over loopback TCP")
struct ExternalPlacementTests {
    @Test("map over two agents equals the local result; both agents are listed")
    func mapEqualsLocal() async throws {
        let agents = TestAgents()
        let pool = try await makeClusterPool(agents: 2, slots: 2, fixture: agents)
        #expect(pool.workers == 4)
        let inputs = Array(0..<20_000)
        let outputs = try await pool.map(Square.self, inputs)
        #expect(outputs == inputs.map { $0 * $0 })
        let one = try await pool.run(Square.self, 12)
        #expect(one == 144)
        let listed = pool.agents
        #expect(listed.count == 2)
        #expect(listed.allSatisfy { $0.isConnected && $0.slots == 2 && $0.address.hasPrefix("127.0.0.1:") && $0.launch == "external" })
        await pool.shutdown()
        #expect(await eventually(within: .seconds(3)) { agents.pids.allSatisfy { !isAlive($0) } })
    }
}
