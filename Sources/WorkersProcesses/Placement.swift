import Logging
import WorkersCore

/// Where a ``ProcessPool``'s workers live: on this machine (``local``, the default), or — with
/// `import WorkersCluster` — on Slurm nodes, SSH hosts, or agents started by any launcher. The
/// pool's calls are the same wherever its workers are.
public struct Placement: Sendable {
    package enum Kind: Sendable {
        case local(workers: Int)
        case remote(@Sendable (PlacementContext) async throws -> any PlacementDriver)
    }

    package let kind: Kind

    /// A placement that starts its workers elsewhere: `start` brings up its agents and returns
    /// once they are reachable. For ``WorkersCluster``'s placements.
    package init(start: @escaping @Sendable (PlacementContext) async throws -> any PlacementDriver) {
        kind = .remote(start)
    }

    private init(workers: Int) {
        kind = .local(workers: workers)
    }

    /// Worker processes on this machine, one per CPU the process may use (``cpuCount``).
    public static var local: Placement { Placement(workers: cpuCount) }

    /// `workers` worker processes on this machine; at least 1 (a precondition naming `workers`).
    public static func local(workers: Int) -> Placement {
        precondition(workers >= 1, "workers must be at least 1 (got \(workers))")
        return Placement(workers: workers)
    }
}

/// What a remote placement is told when its pool starts.
package struct PlacementContext: Sendable {
    /// The worker (and agent) program.
    package var executable: String
    /// `name|Input|Output` of each job, sorted: what the job-set digest is made of.
    package var jobSignatures: [String]
    package var heartbeat: Heartbeat
    package var logger: Logger
    /// The pool's metrics, when it has a factory: agents joining, lost, leaving, refused.
    package var metrics: ProcessPoolMetrics?
}

/// A started remote placement: how many worker slots it has, how the pool starts a worker in one,
/// what its agents are doing, and how it ends.
package protocol PlacementDriver: Sendable {
    /// Worker slots across every connected agent when the pool started.
    var slots: Int { get }
    /// Batches each slot is sent beyond the one it runs, so its next starts without waiting a
    /// network round trip (0: none).
    var prefetch: Int { get }
    /// Starts a worker in a free slot of some agent.
    var launcher: any WorkerLauncher { get }
    /// The agents now.
    var agents: [ProcessPool.AgentInfo] { get }
    /// Called when the pool's shutdown begins: slots that wait for an agent stop waiting soon,
    /// since no agent may come.
    func shutdownBegan()
    /// Called once the pool has stopped its workers: ends the agents (and the Slurm steps or
    /// jobs, or the SSH connections, that carry them), closes the listener, removes the key.
    func shutdown() async
}

extension Job {
    /// `name|Input|Output`, the job's part of a job-set digest: two programs whose jobs agree on
    /// names but not on types are told apart.
    package static var wireSignature: String {
        "\(name)|\(String(reflecting: Input.self))|\(String(reflecting: Output.self))"
    }
}

extension ProcessPool {
    /// A node agent of a pool placed beyond this machine, as the pool sees it now.
    public struct AgentInfo: Hashable, Sendable {
        /// The agent's host name, as it reported it.
        public var host: String
        /// The address its link comes from.
        public var address: String
        /// How it was started: `slurm job 41 step 0 task 1`, `ssh alice@node1`, `external`.
        public var launch: String
        /// Worker slots it offers.
        public var slots: Int
        /// Whether its link is up.
        public var isConnected: Bool
        /// Time since its last frame (a heartbeat or more).
        public var heartbeatAge: Duration
        /// Batches its workers answered.
        public var batchesDone: Int
        /// Workers lost on it: crashed, killed, or cut off with the agent.
        public var losses: Int

        /// Creates a description.
        public init(host: String, address: String, launch: String, slots: Int, isConnected: Bool, heartbeatAge: Duration, batchesDone: Int, losses: Int) {
            self.host = host
            self.address = address
            self.launch = launch
            self.slots = slots
            self.isConnected = isConnected
            self.heartbeatAge = heartbeatAge
            self.batchesDone = batchesDone
            self.losses = losses
        }
    }
}
