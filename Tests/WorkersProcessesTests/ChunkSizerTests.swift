import Testing
@testable import WorkersProcesses

/// The adaptive chunk size, fed measurements directly: no processes, no clocks.
@Suite struct ChunkSizerTests {
    @Test func anExplicitSizeNeverChanges() {
        var sizer = ChunkSizer(chunkSize: 7, knownCount: 1_000, workers: 2)
        #expect(sizer.size == 7)
        sizer.record(count: 7, nanoseconds: 1)
        sizer.record(count: 7, nanoseconds: 10_000_000_000)
        #expect(sizer.size == 7)
    }

    @Test func tinyJobsGrowChunksTowardTheTargetAtMostSixteenfoldAStep() {
        var sizer = ChunkSizer(chunkSize: nil, knownCount: 0, workers: 2)
        #expect(sizer.size == 1)
        var sizes: [Int] = []
        for _ in 0..<12 {
            let count = sizer.size
            // 60 µs of fixed cost per chunk, 200 ns per job.
            sizer.record(count: count, nanoseconds: 60_000 + UInt64(count) * 200)
            sizes.append(sizer.size)
        }
        #expect(sizes[0] == 16)
        for (before, after) in zip([1] + sizes, sizes) { #expect(after <= before * 16) }
        // Converges near 5 ms / 200 ns = 25,000 minus the fixed cost's share.
        #expect(sizes.last! > 15_000 && sizes.last! <= 25_000)
    }

    @Test func slowJobsStayAtOne() {
        var sizer = ChunkSizer(chunkSize: nil, knownCount: 100, workers: 2)
        sizer.record(count: 1, nanoseconds: 250_000_000)
        #expect(sizer.size == 1)
    }

    @Test func aKnownCountCapsChunksAtAQuarterOfAWorkersShare() {
        var sizer = ChunkSizer(chunkSize: nil, knownCount: 8_000, workers: 2)
        for _ in 0..<10 { sizer.record(count: sizer.size, nanoseconds: UInt64(sizer.size) * 10) }
        #expect(sizer.size == 1_000)
    }

    @Test func chunksShrinkAtOnceWhenJobsTurnSlow() {
        var sizer = ChunkSizer(chunkSize: nil, knownCount: 0, workers: 2)
        for _ in 0..<10 { sizer.record(count: sizer.size, nanoseconds: UInt64(sizer.size) * 1_000) }
        let fast = sizer.size
        sizer.record(count: fast, nanoseconds: UInt64(fast) * 1_000_000)
        #expect(sizer.size < fast / 50)
    }
}
