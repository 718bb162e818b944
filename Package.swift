// swift-tools-version: 6.2
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "swift-workers",
    products: [
        .library(name: "Workers", targets: ["Workers"]),
        // The wire protocol (frames, the payload codec, the handshake), for those who speak it
        // directly; `import Workers` does not export it.
        .library(name: "WorkersWire", targets: ["WorkersWire"]),
        // Opt-in: pools as swift-service-lifecycle services, so `Workers` alone never builds it.
        .library(name: "WorkersServiceLifecycle", targets: ["WorkersServiceLifecycle"]),
        // Opt-in: the same ProcessPool with its workers on other machines (Slurm, SSH, any
        // launcher) over an authenticated TCP link; the only product that builds swift-crypto.
        .library(name: "WorkersCluster", targets: ["WorkersCluster"]),
        .executable(name: "workers", targets: ["workers"]),
        // `workers run` alone, without Foundation or the lab: starts in a few milliseconds.
        .executable(name: "workers-run", targets: ["workers-run"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    ],
    targets: [
        // Only what Swift cannot call directly: CPU_COUNT, gettid, pthread naming.
        .target(name: "CWorkersShims"),
        // Primitives, queues, the cgroup-aware CPU count, the Job protocol, shared errors.
        .target(
            name: "WorkersCore",
            dependencies: [
                "CWorkersShims",
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            swiftSettings: swiftSettings
        ),
        // Frames, the binary payload codec and the handshake: pure, no I/O, nothing of ours.
        .target(name: "WorkersWire", swiftSettings: swiftSettings),
        // ThreadPool: a TaskExecutor of dedicated threads for blocking work.
        .target(
            name: "WorkersThreads",
            dependencies: [
                "WorkersCore",
                "CWorkersShims",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        // ProcessPool: worker processes, the worker entry point, spawn and supervision.
        .target(
            name: "WorkersProcesses",
            dependencies: [
                "WorkersCore",
                "WorkersWire",
                "CWorkersShims",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        // Umbrella: `import Workers`.
        .target(name: "Workers", dependencies: ["WorkersCore", "WorkersThreads", "WorkersProcesses"], swiftSettings: swiftSettings),
        // ProcessPool and ThreadPool as swift-service-lifecycle services.
        .target(
            name: "WorkersServiceLifecycle",
            dependencies: [
                "WorkersThreads",
                "WorkersProcesses",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Placements beyond one machine: the node agent, the TCP link and its authentication.
        .target(
            name: "WorkersCluster",
            dependencies: [
                "WorkersCore",
                "WorkersWire",
                "WorkersProcesses",
                "CWorkersShims",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // `workers run`: GNU parallel's command line, compiled.
        .target(
            name: "WorkersRun",
            dependencies: [
                "WorkersCore",
                "CWorkersShims",
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            swiftSettings: swiftSettings
        ),
        // `workers lab`: workloads, the simulated GIL, experiments, the CPython peer, reports.
        .target(
            name: "WorkersLab",
            dependencies: ["WorkersCore", "WorkersThreads", "WorkersProcesses", "CWorkersShims"],
            // The CPython peer is a real Python file (linted and compiled as Python in the tests),
            // compiled into the binary as bytes, so an installed `workers` needs no resource bundle.
            resources: [.embedInCode("lab_peer.py")],
            swiftSettings: swiftSettings
        ),
        // The command tree, in a library so tests can drive it in-process.
        .target(
            name: "WorkersCLI",
            dependencies: [
                "Workers",
                "WorkersCluster",
                "WorkersLab",
                "WorkersRun",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(name: "workers", dependencies: ["WorkersCLI"], swiftSettings: swiftSettings),
        // Release builds link the Swift runtime in (no libswiftCore.so to load and relocate: a third
        // less start-up); debug builds do not, so ThreadSanitizer, which cannot run with it, still can.
        // They are also position-dependent (-no-pie): a PIE's 25,000 relative relocations, most in
        // Swift's metadata, made the loader write through its 300 KB of relocated data (.data.rel.ro
        // and .data) at every start; without them one job's start went from 8.3 to 6.5 ms (median
        // of 40 here). The cost is that the
        // program's own code is not at a random address (ASLR still moves the stack, heap and libc).
        .executableTarget(name: "workers-run", dependencies: ["WorkersRun"], swiftSettings: swiftSettings,
                          linkerSettings: [.unsafeFlags(["-static-stdlib", "-Xlinker", "-no-pie"], .when(configuration: .release))]),
        .target(name: "WorkersTestJobs", dependencies: ["WorkersCore", "WorkersProcesses"], path: "Tests/WorkersTestJobs", swiftSettings: swiftSettings),
        .executableTarget(name: "WorkersTestWorker", dependencies: ["WorkersProcesses", "WorkersCluster", "WorkersTestJobs"], path: "Tests/WorkersTestWorker", swiftSettings: swiftSettings),
        .testTarget(
            name: "WorkersProcessesTests",
            dependencies: ["WorkersCore", "WorkersThreads", "WorkersProcesses", "WorkersTestJobs", "WorkersTestWorker", "WorkersServiceLifecycle", .product(name: "MetricsTestKit", package: "swift-metrics"), .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "WorkersClusterTests",
            dependencies: ["WorkersCluster", "WorkersProcesses", "WorkersCore", "WorkersWire", "WorkersTestJobs", "WorkersTestWorker", "workers", .product(name: "Crypto", package: "swift-crypto"), .product(name: "MetricsTestKit", package: "swift-metrics")],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "WorkersWireTests", dependencies: ["WorkersWire"], swiftSettings: swiftSettings),
        .testTarget(name: "WorkersCoreTests", dependencies: ["WorkersCore"], swiftSettings: swiftSettings),
        .testTarget(
            name: "WorkersThreadsTests",
            dependencies: [
                "WorkersThreads",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "InMemoryLogging", package: "swift-log"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "WorkersRunTests", dependencies: ["WorkersRun"], swiftSettings: swiftSettings),
        .testTarget(name: "WorkersLabTests", dependencies: ["WorkersLab", "WorkersCore"], swiftSettings: swiftSettings),
        .testTarget(name: "WorkersCLITests", dependencies: ["WorkersCLI", "workers", "workers-run", "WorkersCluster", "WorkersLab", "WorkersProcesses", "WorkersTestJobs"], swiftSettings: swiftSettings),
    ],
    swiftLanguageModes: [.v6]
)
