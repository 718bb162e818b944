import Synchronization
import WorkersCore

extension ThreadPool {
    /// Runs `body` on every input on the pool's threads and returns the results in input order.
    ///
    /// The input is consumed lazily: at most `maxInFlight` bodies run at once, and an input is read
    /// only when a slot is free to run it, so an endless or expensive sequence is fine.
    ///
    /// - Parameters:
    ///   - inputs: the inputs; read from pool threads, one at a time.
    ///   - maxInFlight: most bodies running at once; default (and at most) the pool's `maxThreads`.
    ///     Must be at least 1 (a precondition naming `maxInFlight`).
    ///   - body: the blocking work for one input.
    /// - Returns: `body`'s results, in the order of `inputs`.
    /// - Throws: the error of the lowest-indexed input whose `body` threw; after the first error no
    ///   further input is started. ``ThreadPoolError`` when the pool cannot take work.
    ///
    /// ## Cancellation
    /// Cancelling the caller stops new inputs from starting, makes `Task.isCancelled` true inside
    /// running bodies, and throws `CancellationError` once they return.
    public func map<S: Sequence, T: Sendable>(
        _ inputs: sending S,
        maxInFlight: Int? = nil,
        _ body: @escaping @Sendable (S.Element) throws -> T
    ) async throws -> [T] where S.Element: Sendable {
        try await mapInOrder(inputs, maxInFlight: maxInFlight) { try body($0) }
    }

    /// Runs a ``Job`` on every input on the pool's threads; results in input order.
    ///
    /// The same call runs the job on a process pool.
    ///
    /// - Parameters:
    ///   - job: the job type.
    ///   - inputs: the inputs, consumed lazily.
    ///   - maxInFlight: most jobs running at once; default the pool's `maxThreads`.
    /// - Returns: the outputs, in input order.
    /// - Throws: the error of the lowest-indexed failed input; no further input starts after it.
    ///
    /// ## Cancellation
    /// As ``map(_:maxInFlight:_:)``.
    public func map<J: Job, S: Sequence>(
        _ job: J.Type,
        _ inputs: sending S,
        maxInFlight: Int? = nil
    ) async throws -> [J.Output] where S.Element == J.Input {
        try await mapInOrder(inputs, maxInFlight: maxInFlight) { try await J().run($0) }
    }

    /// Runs `body` on every input on the pool's threads and yields `(index, value)` pairs as they
    /// complete.
    ///
    /// Nothing starts until iteration begins. At most `maxInFlight` inputs are running or finished
    /// but not yet consumed: a slow consumer holds the producers back.
    ///
    /// ```swift
    /// for try await (index, page) in io.mapUnordered(urls) { try fetchSync($0) } { … }
    /// ```
    ///
    /// - Parameters:
    ///   - inputs: the inputs, consumed lazily.
    ///   - maxInFlight: most inputs running or waiting to be consumed; default the pool's
    ///     `maxThreads`. At least 1.
    ///   - body: the blocking work for one input.
    /// - Returns: a single-pass sequence of `(index, value)` in completion order; it throws the
    ///   first error a body throws, after which no further input starts.
    ///
    /// ## Cancellation
    /// Cancelling the consuming task, or dropping the iterator, stops new inputs from starting and
    /// makes `Task.isCancelled` true inside running bodies.
    public func mapUnordered<S: Sequence & Sendable, T: Sendable>(
        _ inputs: S,
        maxInFlight: Int? = nil,
        _ body: @escaping @Sendable (S.Element) throws -> T
    ) -> IndexedResults<T> where S.Element: Sendable {
        let width = checkedWidth(maxInFlight)
        return IndexedResults(capacity: width) { channel in
            await self.runLoops(inputs, width: width, body: { try body($0) }, sink: StreamSink(channel))
        }
    }

    /// Runs a ``Job`` on every input; yields `(index, output)` as they complete.
    ///
    /// - Parameters:
    ///   - job: the job type.
    ///   - inputs: the inputs, consumed lazily.
    ///   - maxInFlight: most jobs running or waiting to be consumed; default the pool's `maxThreads`.
    /// - Returns: a single-pass sequence of `(index, output)` in completion order.
    ///
    /// ## Cancellation
    /// As ``mapUnordered(_:maxInFlight:_:)``.
    public func mapUnordered<J: Job, S: Sequence & Sendable>(
        _ job: J.Type,
        _ inputs: S,
        maxInFlight: Int? = nil
    ) -> IndexedResults<J.Output> where S.Element == J.Input {
        let width = checkedWidth(maxInFlight)
        return IndexedResults(capacity: width) { channel in
            await self.runLoops(inputs, width: width, body: { try await J().run($0) }, sink: StreamSink(channel))
        }
    }

    // MARK: - Engine

    private func checkedWidth(_ maxInFlight: Int?) -> Int {
        if let maxInFlight { precondition(maxInFlight >= 1, "maxInFlight must be at least 1 (got \(maxInFlight))") }
        return min(maxInFlight ?? maxThreads, maxThreads)
    }

    private func mapInOrder<S: Sequence, T: Sendable>(
        _ inputs: sending S,
        maxInFlight: Int?,
        _ body: @escaping @Sendable (S.Element) async throws -> T
    ) async throws -> [T] where S.Element: Sendable {
        let width = checkedWidth(maxInFlight)
        let results = OrderedResults<T>()
        let count = inputs.underestimatedCount
        await runLoops(inputs, width: count > 0 ? min(width, count) : width, body: body, sink: results)
        return try results.collect()
    }

    /// Runs up to `width` loops on the pool, each holding one admission slot and pulling inputs
    /// until they run out, an error stops them, or the task is cancelled.
    ///
    /// Loops start one at a time and multiply only while bodies are slow (or not yet timed):
    /// blocking jobs reach `width` loops in a few doublings, while tiny jobs stay on two loops,
    /// which beats many threads fighting over one input lock.
    func runLoops<S: Sequence, T: Sendable, Sink: ResultSink<T>>(
        _ inputs: sending S,
        width: Int,
        body: @escaping @Sendable (S.Element) async throws -> T,
        sink: Sink
    ) async where S.Element: Sendable {
        let feeder = InputFeeder(inputs)
        let spawner = LoopSpawner(width: width)
        await withTaskGroup(of: Void.self) { group in
            group.addTask(executorPreference: self) {
                await self.loop(feeder: feeder, spawner: spawner, body: body, sink: sink)
            }
            while await spawner.nextSpawn() {
                group.addTask(executorPreference: self) {
                    await self.loop(feeder: feeder, spawner: spawner, body: body, sink: sink)
                }
            }
            await group.waitForAll()
        }
        if Task.isCancelled { await sink.fail(index: Int.max, CancellationError()) }
        await sink.finish()
    }

    private func loop<Element: Sendable, T: Sendable, Sink: ResultSink<T>>(
        feeder: InputFeeder<Element>,
        spawner: LoopSpawner,
        body: @Sendable (Element) async throws -> T,
        sink: Sink
    ) async {
        defer { spawner.loopEnded() }
        do {
            _ = try await core.admit()  // a loop is a job: it holds one slot while it pulls inputs
        } catch {
            feeder.stop()
            await sink.fail(index: Int.max, error)
            return
        }
        defer { core.finish() }
        var results = sink.makeBuffer()
        defer { sink.flush(&results) }
        let clock = ContinuousClock()
        var index = 0
        var taken = 0
        while !Task.isCancelled, let input = feeder.next(index: &index) {
            // A loop times its first two bodies, then one in 64: enough to double the loops
            // while bodies are slow, without two clock reads and a lock on every tiny one.
            let timing = spawner.mayGrow && (taken < 2 || taken & 63 == 0)
            taken &+= 1
            if timing { spawner.inputTaken() }
            let start = timing ? clock.now : nil
            do {
                let value = try await body(input)
                if let start { spawner.bodyTook(start.duration(to: clock.now)) }
                guard await sink.store(index: index, value, buffer: &results) else { feeder.stop(); return }
            } catch {
                feeder.stop()
                await sink.fail(index: index, error)
                return
            }
        }
    }
}

/// Decides when a `map` starts another loop, and lets the caller wait for those decisions.
///
/// A loop that takes an input while bodies are slow (over 50 µs) or not yet timed asks for the
/// loop count to double, up to `width`. The caller's task starts the loops it is asked for, so
/// they are child tasks: they inherit its cancellation and task-locals.
final class LoopSpawner: @unchecked Sendable {  // @unchecked: state guarded by `lock`; `growing` is atomic.
    private static let slowBody = Duration.microseconds(50)
    private let lock = PthreadLock()
    private let width: Int
    private var started = 1
    private var active = 1
    private var pending = 0
    private var lastBody: Duration?
    private var waiter: CheckedContinuation<Bool, Never>?
    private let growing: Atomic<Bool>

    init(width: Int) {
        self.width = width
        growing = Atomic(width > 1)
    }

    /// Whether loops may still be added; read without the lock on every input.
    var mayGrow: Bool { growing.load(ordering: .relaxed) }

    /// A loop took an input: ask for more loops while bodies are slow or untimed.
    func inputTaken() {
        let resume: CheckedContinuation<Bool, Never>? = lock.withLock {
            if let lastBody, lastBody < Self.slowBody { return nil }
            let target = min(width, 2 * (started + pending))
            guard target > started + pending else { return nil }
            pending = target - started
            if started + pending >= width { growing.store(false, ordering: .relaxed) }
            guard let waiter else { return nil }
            self.waiter = nil
            takeSpawnLocked()
            return waiter
        }
        resume?.resume(returning: true)
    }

    /// One pending loop is being started by the caller.
    private func takeSpawnLocked() {
        pending -= 1
        started += 1
        active += 1
    }

    /// A timed body finished.
    func bodyTook(_ duration: Duration) {
        lock.withLock { lastBody = duration }
    }

    /// A loop ended; the last one ends the caller's wait.
    func loopEnded() {
        let resume: CheckedContinuation<Bool, Never>? = lock.withLock {
            active -= 1
            guard active == 0, pending == 0 else { return nil }
            growing.store(false, ordering: .relaxed)
            defer { waiter = nil }
            return waiter
        }
        resume?.resume(returning: false)
    }

    /// Waits until another loop should start (`true`) or every loop has ended (`false`).
    func nextSpawn() async -> Bool {
        await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let answer: Bool? = lock.withLock {
                if pending > 0 {
                    takeSpawnLocked()
                    return true
                }
                if active == 0 { return false }
                waiter = continuation
                return nil
            }
            if let answer { continuation.resume(returning: answer) }
        }
    }
}

/// Hands out the inputs of a `map`, one at a time, to the loops on the pool's threads.
///
/// The iterator sits behind a closure made where its type is known, and nothing here returns a
/// tuple: this runs once per input in code that is not specialized, where an existential call or
/// a tuple costs a metadata lookup each time.
final class InputFeeder<Element: Sendable>: @unchecked Sendable {  // @unchecked: `pull` is only called under `lock`.
    private let lock = PthreadLock()
    private let pull: () -> Element?
    private var nextIndex = 0
    private var stopped = false

    init<S: Sequence>(_ inputs: sending S) where S.Element == Element {
        var iterator = inputs.makeIterator()
        pull = { iterator.next() }
    }

    /// The next input, its index in `index`; `nil` when the inputs are done or stopped.
    func next(index: inout Int) -> Element? {
        lock.lock()
        defer { lock.unlock() }
        guard !stopped, let element = pull() else {
            stopped = true
            return nil
        }
        index = nextIndex
        nextIndex += 1
        return element
    }

    func stop() {
        lock.withLock { stopped = true }
    }
}

/// Where a `map` loop puts results.
protocol ResultSink<Value>: Sendable {
    associatedtype Value: Sendable
    associatedtype Buffer
    /// A loop's own buffer, so that storing a result takes no shared lock.
    func makeBuffer() -> Buffer
    /// Stores a value; `false` tells the loop to stop (the consumer has gone).
    func store(index: Int, _ value: Value, buffer: inout Buffer) async -> Bool
    /// Hands a loop's buffered results over when the loop ends.
    func flush(_ buffer: inout Buffer)
    /// Records a failure; `index` orders failures (`Int.max` for failures of no input).
    func fail(index: Int, _ error: any Error) async
    /// Every loop has ended.
    func finish() async
}

/// Collects `map` results in input order and keeps the lowest-indexed failure.
final class OrderedResults<Value: Sendable>: ResultSink, @unchecked Sendable {  // @unchecked: state guarded by `lock`.
    private let lock = PthreadLock()
    private var values: [Value?] = []
    private var failure: (index: Int, error: any Error)?

    /// A loop's results: indices and values side by side (no tuples in unspecialized code).
    struct Buffer {
        var indices: [Int] = []
        var values: [Value] = []
    }

    func makeBuffer() -> Buffer { Buffer() }

    func store(index: Int, _ value: Value, buffer: inout Buffer) async -> Bool {
        buffer.indices.append(index)
        buffer.values.append(value)
        return true
    }

    func flush(_ buffer: inout Buffer) {
        guard let highest = buffer.indices.max() else { return }
        lock.withLock {
            if highest >= values.count {
                values.append(contentsOf: repeatElement(nil, count: highest - values.count + 1))
            }
            for position in buffer.indices.indices { values[buffer.indices[position]] = buffer.values[position] }
        }
        buffer = Buffer()
    }

    func fail(index: Int, _ error: any Error) async {
        lock.withLock {
            if failure == nil || index < failure!.index { failure = (index, error) }
        }
    }

    func finish() async {}

    func collect() throws -> [Value] {
        try lock.withLock {
            if let failure { throw failure.error }
            return values.map { $0! }
        }
    }
}

extension ThreadPool: JobPool {
    /// ``map(_:_:maxInFlight:)`` with its default window, as ``JobPool`` asks.
    ///
    /// ## Cancellation
    /// As ``map(_:_:maxInFlight:)``.
    public func map<J: Job, S: Sequence & Sendable>(_ job: J.Type, _ inputs: S) async throws -> [J.Output] where S.Element == J.Input {
        try await map(job, inputs, maxInFlight: nil)
    }

    /// ``mapUnordered(_:_:maxInFlight:)`` with its default window, as ``JobPool`` asks.
    ///
    /// ## Cancellation
    /// As ``mapUnordered(_:_:maxInFlight:)``.
    public func mapUnordered<J: Job, S: Sequence & Sendable>(_ job: J.Type, _ inputs: S) -> IndexedResults<J.Output> where S.Element == J.Input {
        mapUnordered(job, inputs, maxInFlight: nil)
    }
}
