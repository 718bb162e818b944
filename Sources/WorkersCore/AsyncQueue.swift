import DequeModule

/// A bounded multi-producer, multi-consumer FIFO queue for tasks, with backpressure: ``send(_:)``
/// suspends while the queue is full and ``next()`` suspends while it is empty. Python's
/// `asyncio.Queue`, with `finish()` in place of `shutdown()`.
///
/// swift-async-algorithms' channels were the first choice and do not fit: `AsyncChannel` holds
/// no buffer (every send waits for a receiver) and `MultiProducerSingleConsumerAsyncChannel`
/// allows one consumer only. This queue is a buffer of `capacity` items that many tasks consume.
///
/// It is also an `AsyncSequence`: `for try await item in queue` ends once the queue is finished and
/// drained.
public final class AsyncQueue<Element: Sendable>: AsyncSequence, @unchecked Sendable {  // @unchecked: state guarded by `lock`.
    /// `CancellationError` when the receiving task is cancelled.
    public typealias Failure = any Error

    /// The most items the queue buffers.
    public let capacity: Int
    private let lock = PthreadLock()
    private var buffer: Deque<Element> = []
    private var senders: Deque<(id: UInt64, element: Element, continuation: CheckedContinuation<Void, any Error>)> = []
    private var receivers = WaiterList<Element?>()
    private var finished = false

    /// Creates a queue that buffers at most `capacity` items.
    ///
    /// - Parameter capacity: at least 1 (a precondition naming `capacity`).
    public init(capacity: Int) {
        precondition(capacity >= 1, "capacity must be at least 1 (got \(capacity))")
        self.capacity = capacity
    }

    /// Items buffered now.
    public var count: Int { lock.withLock { buffer.count } }

    /// Appends `element`, suspending while the queue is full.
    ///
    /// - Throws: `QueueError(.closed)` if the queue is or becomes finished before the element is
    ///   taken in.
    ///
    /// ## Cancellation
    /// A sender cancelled while it waits for room throws `CancellationError` and its element is not
    /// added.
    public func send(_ element: Element) async throws {
        var receiver: WaiterList<Element?>.Continuation?
        try await suspendUntilResumed(lock: lock) { (id, continuation: CheckedContinuation<Void, any Error>) -> WaitRegistration<Void> in
            if finished { return .resume(.failure(QueueError(.closed))) }
            if let waiting = receivers.popFirst() {
                // Hand over directly; the receiver is resumed after the lock is released.
                receiver = waiting
                return .resume(.success(()))
            }
            if buffer.count < capacity {
                buffer.append(element)
                return .resume(.success(()))
            }
            senders.append((id, element, continuation))
            return .suspended
        } unregister: { [self] id in
            guard let index = senders.firstIndex(where: { $0.id == id }) else { return nil }
            return senders.remove(at: index).continuation
        }
        receiver?.resume(returning: element)
    }

    /// Appends `element` if there is room now.
    ///
    /// - Throws: `QueueError(.full)` if the queue is full; `QueueError(.closed)` if it is finished.
    public func trySend(_ element: Element) throws(QueueError) {
        let receiver: WaiterList<Element?>.Continuation? = try lock.withLock { () throws(QueueError) in
            if finished { throw QueueError(.closed) }
            if let receiver = receivers.popFirst() { return receiver }
            guard buffer.count < capacity else { throw QueueError(.full) }
            buffer.append(element)
            return nil
        }
        receiver?.resume(returning: element)
    }

    /// Removes and returns the oldest element, suspending while the queue is empty.
    ///
    /// - Returns: the element, or `nil` once the queue is finished and drained.
    ///
    /// ## Cancellation
    /// A receiver cancelled while it waits throws `CancellationError` and takes nothing.
    public func next() async throws -> Element? {
        var sender: CheckedContinuation<Void, any Error>?
        let element: Element? = try await suspendUntilResumed(lock: lock) { id, continuation in
            if let first = buffer.popFirst() {
                if let waiting = senders.popFirst() {
                    buffer.append(waiting.element)
                    sender = waiting.continuation
                }
                return .resume(.success(first))
            }
            if let waiting = senders.popFirst() {
                sender = waiting.continuation
                return .resume(.success(waiting.element))
            }
            if finished { return .resume(.success(nil)) }
            receivers.append(id, continuation)
            return .suspended
        } unregister: { [self] id in
            receivers.remove(id: id)
        }
        sender?.resume()
        return element
    }

    /// Finishes the queue: waiting and later senders get `QueueError(.closed)`; receivers get the
    /// buffered elements, then `nil`.
    public func finish() {
        let (waitingSenders, waitingReceivers) = lock.withLock {
            finished = true
            let waitingSenders = senders.map(\.continuation)
            senders.removeAll()
            return (waitingSenders, receivers.removeAll())
        }
        for sender in waitingSenders { sender.resume(throwing: QueueError(.closed)) }
        for receiver in waitingReceivers { receiver.resume(returning: nil) }
    }

    /// Creates an iterator that receives with ``next()``.
    public func makeAsyncIterator() -> Iterator { Iterator(queue: self) }

    /// Receives elements until the queue is finished and drained.
    public struct Iterator: AsyncIteratorProtocol {
        let queue: AsyncQueue

        /// The next element, or `nil` at the end.
        ///
        /// ## Cancellation
        /// Throws `CancellationError` if the task is cancelled while it waits.
        public mutating func next() async throws -> Element? {
            try await queue.next()
        }
    }
}
