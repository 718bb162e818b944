// swift-tools-version: 6.2
// The benchmarks live in their own package so that users of swift-workers never download
// swift-nio or the other peers measured here.
import PackageDescription

let package = Package(
    name: "workers-benchmarks",
    dependencies: [
        .package(name: "swift-workers", path: ".."),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        .executableTarget(
            name: "workers-bench",
            dependencies: [
                .product(name: "Workers", package: "swift-workers"),
                .product(name: "WorkersWire", package: "swift-workers"),
                .product(name: "WorkersCluster", package: "swift-workers"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: [.enableUpcomingFeature("ExistentialAny")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
