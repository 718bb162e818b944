import Foundation
import Workers
import WorkersWire

/// `workers-bench wire`: the payload codec of the process pool against Foundation's encoders, on a
/// small record (a typical job input) and on 64 KiB of bytes.
struct WireSuite {
    var runs: Int
    var iterations: Int
    var progress: (String) -> Void

    struct Record: Codable, Equatable {
        var id: Int
        var name: String
        var tags: [String]
        var weights: [Double]
        var parent: Int?
        var flag: Bool
    }

    static let record = Record(
        id: 123_456, name: "invoice-2026-11-26", tags: ["paid", "eu", "net30"],
        weights: [0.25, 1.5, 3.75, 10], parent: 42, flag: true
    )
    static let blob = [UInt8]((0..<65_536).map { UInt8(truncatingIfNeeded: $0 &* 31) })

    func run() throws -> [Measurement] {
        progress("wire: encode + decode, \(iterations) iterations × \(runs) runs per codec")
        var results: [Measurement] = []
        let codecs: [(String, (Record) throws -> Int, ([UInt8]) throws -> Int)] = [
            ("WireEncoder/WireDecoder", { record in
                let bytes = try WireEncoder().encode(record)
                let decoded = try WireDecoder().decode(Record.self, from: bytes)
                precondition(decoded == record)
                return bytes.count
            }, { blob in
                let bytes = try WireEncoder().encode(blob)
                let decoded = try WireDecoder().decode([UInt8].self, from: bytes).count
                precondition(decoded == blob.count)
                return bytes.count
            }),
            ("JSONEncoder/JSONDecoder", { record in
                let data = try JSONEncoder().encode(record)
                let decoded = try JSONDecoder().decode(Record.self, from: data)
                precondition(decoded == record)
                return data.count
            }, { blob in
                let data = try JSONEncoder().encode(blob)
                let decoded = try JSONDecoder().decode([UInt8].self, from: data).count
                precondition(decoded == blob.count)
                return data.count
            }),
            ("PropertyListEncoder (binary)", { record in
                let encoder = PropertyListEncoder()
                encoder.outputFormat = .binary
                let data = try encoder.encode(record)
                let decoded = try PropertyListDecoder().decode(Record.self, from: data)
                precondition(decoded == record)
                return data.count
            }, { blob in
                let encoder = PropertyListEncoder()
                encoder.outputFormat = .binary
                let data = try encoder.encode(blob)
                let decoded = try PropertyListDecoder().decode([UInt8].self, from: data).count
                precondition(decoded == blob.count)
                return data.count
            }),
        ]
        for (name, record, blob) in codecs {
            let recordSize = try record(Self.record)
            results.append(Measurement(
                suite: "wire", workload: "record round trip", system: name, unit: "per-op",
                samples: try time { _ = try record(Self.record) }, note: "\(recordSize) bytes"
            ))
            let blobSize = try blob(Self.blob)
            let blobIterations = max(1, iterations / 100)
            results.append(Measurement(
                suite: "wire", workload: "64 KiB bytes round trip", system: name, unit: "per-op",
                samples: try time(iterations: blobIterations) { _ = try blob(Self.blob) }, note: "\(blobSize) bytes"
            ))
        }
        // A batch of job inputs: 10,000 integers, per integer. The wire coder takes arrays of
        // scalars straight to bytes; JSON is the reference.
        let numbers: [Int] = (0..<10_000).map { (index: Int) -> Int in index &* 7_919 &- 5_000_000 }
        let arrayIterations = max(1, iterations / 200)
        let arrayCodecs: [(String, () throws -> Void)] = [
            ("WireEncoder/WireDecoder", {
                let decoded = try WireDecoder().decode([Int].self, from: try WireEncoder().encode(numbers))
                precondition(decoded.count == numbers.count)
            }),
            ("JSONEncoder/JSONDecoder", {
                let decoded = try JSONDecoder().decode([Int].self, from: try JSONEncoder().encode(numbers))
                precondition(decoded.count == numbers.count)
            }),
        ]
        for (name, body) in arrayCodecs {
            let samples = try time(iterations: arrayIterations, body).map { $0 / Double(numbers.count) }
            results.append(Measurement(suite: "wire", workload: "[Int] round trip", system: name, unit: "per-element", samples: samples))
        }
        return results
    }

    private func time(iterations: Int? = nil, _ body: () throws -> Void) throws -> [Double] {
        let count = iterations ?? self.iterations
        for _ in 0..<max(1, count / 10) { try body() }
        var samples: [Double] = []
        let clock = ContinuousClock()
        for _ in 0..<runs {
            let start = clock.now
            for _ in 0..<count { try body() }
            samples.append(start.duration(to: clock.now).seconds / Double(count))
        }
        return samples
    }
}
