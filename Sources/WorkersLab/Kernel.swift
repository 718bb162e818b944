#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import WorkersCore

/// The lab's CPU-bound work: a 64-bit linear congruential generator folded into a checksum — the
/// same loop the CPython peer runs, so the two can be told apart only by speed. The checksum is
/// printed, so the optimiser cannot drop the work, and every mode must agree on it.
public enum Kernel {
    /// Iterations between checkpoints by default: about 4 µs of work here, finer than any
    /// switch interval.
    public static let checkpointEvery = 4_096

    /// Iterations between checkpoints under the simulated GIL: about 60 ns, as often as CPython's
    /// loop looks for a drop request (at every backward jump, each turn of a Python loop). How
    /// fast the holder answers a drop request decides the convoy behind several CPU threads:
    /// answered within nanoseconds, the lock is let go while the CPU thread that asked is still on
    /// its way back into its wait, and that thread, awake, takes it from an I/O thread asleep in
    /// the queue; answered microseconds later, everyone is asleep again and the longest waiter
    /// (often the I/O thread) wins. Measured here (1 ms sleeps behind 2, 4, 8 CPU threads, medians
    /// of 60): a check every 4,096 steps gave 4–9 ms behind 2 where CPython gave 15–35 ms; every 64
    /// steps, 14–30 ms, and within 0.7–1.5× of CPython at every width in four runs.
    public static let gilCheckpointEvery = 64

    /// Runs `iterations` steps from `seed`; calls `checkpoint` every `every` steps.
    @inline(never)
    public static func run(seed: UInt64, iterations: Int, every: Int = checkpointEvery, checkpoint: () -> Void = {}) -> UInt64 {
        precondition(every > 0, "every must be positive (got \(every))")
        var state = seed
        var accumulator: UInt64 = 0
        var remaining = iterations
        while remaining > 0 {
            let steps = min(remaining, every)
            for _ in 0..<steps {
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                accumulator ^= state >> 33
            }
            remaining -= steps
            checkpoint()
        }
        return accumulator
    }

    /// Iterations that take about `seconds` on one core of this machine (the fastest of three
    /// timed runs, so a busy moment does not inflate the size).
    public static func calibrate(seconds: Double) -> Int {
        let probe = 4_000_000
        var best = Double.infinity
        var sink: UInt64 = 0
        for attempt in 0..<3 {
            let start = monotonicSeconds()
            sink ^= run(seed: UInt64(attempt + 1), iterations: probe)
            best = min(best, monotonicSeconds() - start)
        }
        calibrationSink.store(sink, ordering: .relaxed)  // kept, so the timed runs are not dropped
        return max(Self.checkpointEvery, Int(Double(probe) * seconds / max(best, 1e-6)))
    }

    private static let calibrationSink = Atomic<UInt64>(0)
}

/// Sleeps the calling thread (a blocking call, as `time.sleep` is).
func blockingSleep(seconds: Double) {
    sleepThread(nanoseconds: UInt64(max(0, seconds) * 1e9))
}
