import DequeModule

/// A bounded FIFO queue for threads, with the semantics of Python's `queue.Queue` (3.13, with
/// `shutdown`): blocking ``put(_:timeout:)`` and ``get(timeout:)`` with time-outs,
/// ``taskDone()``/``join()`` to wait until every item has been processed, and ``close(immediate:)``
/// that wakes every waiter.
///
/// Its waits block the calling thread: use it between threads (for example ``ThreadPool`` jobs).
/// Tasks should use ``AsyncQueue``, which suspends instead.
public final class BlockingQueue<Element>: @unchecked Sendable {  // @unchecked: all state is guarded by `lock`.
    /// The most items the queue holds.
    public let capacity: Int
    private let lock = PthreadLock()
    private let notEmpty: PthreadCondition
    private let notFull: PthreadCondition
    private let allDone: PthreadCondition
    private var items: Deque<Element> = []
    private var unfinished = 0
    private var closed = false

    /// Creates a queue that holds at most `capacity` items.
    ///
    /// - Parameter capacity: at least 1 (a precondition naming `capacity`); `Int.max` for unbounded.
    public init(capacity: Int) {
        precondition(capacity >= 1, "capacity must be at least 1 (got \(capacity))")
        self.capacity = capacity
        notEmpty = PthreadCondition(lock: lock)
        notFull = PthreadCondition(lock: lock)
        allDone = PthreadCondition(lock: lock)
    }

    /// Items in the queue now.
    public var count: Int { lock.withLock { items.count } }
    /// Whether the queue holds no item now.
    public var isEmpty: Bool { count == 0 }
    /// Whether the queue is full now.
    public var isFull: Bool { count >= capacity }
    /// Whether ``close(immediate:)`` has been called.
    public var isClosed: Bool { lock.withLock { closed } }

    /// Appends `item`, blocking while the queue is full.
    ///
    /// - Parameters:
    ///   - item: the item.
    ///   - timeout: `nil` waits as long as it takes; `.zero` does not wait. Must not be negative.
    /// - Throws: `QueueError(.full)` when the time-out passes first; `QueueError(.closed)` when the
    ///   queue is or becomes closed. The item is not added in either case.
    public func put(_ item: Element, timeout: Duration? = nil) throws(QueueError) {
        let deadline = WaitDeadline(timeout)
        try lock.withLock { () throws(QueueError) in
            while true {
                if closed { throw QueueError(.closed) }
                if items.count < capacity { break }
                if !deadline.wait(on: notFull), items.count >= capacity, !closed { throw QueueError(.full) }
            }
            items.append(item)
            unfinished += 1
            notEmpty.signal()
        }
    }

    /// Removes and returns the oldest item, blocking while the queue is empty.
    ///
    /// - Parameter timeout: `nil` waits as long as it takes; `.zero` does not wait. Must not be negative.
    /// - Throws: `QueueError(.empty)` when the time-out passes first; `QueueError(.closed)` when the
    ///   queue is closed and drained.
    public func get(timeout: Duration? = nil) throws(QueueError) -> Element {
        let deadline = WaitDeadline(timeout)
        return try lock.withLock { () throws(QueueError) -> Element in
            while items.isEmpty {
                if closed { throw QueueError(.closed) }
                if !deadline.wait(on: notEmpty), items.isEmpty {
                    throw QueueError(closed ? .closed : .empty)
                }
            }
            let item = items.removeFirst()
            notFull.signal()
            return item
        }
    }

    /// Marks one item taken by ``get(timeout:)`` as processed; ``join()`` returns when every item
    /// put has been marked. Calling it more times than items were put is a precondition failure.
    public func taskDone() {
        lock.withLock {
            precondition(unfinished > 0, "taskDone() called more times than there were items")
            unfinished -= 1
            if unfinished == 0 { allDone.broadcast() }
        }
    }

    /// Blocks until every item put has been gotten and marked with ``taskDone()``.
    public func join() {
        lock.withLock {
            while unfinished > 0 { allDone.wait() }
        }
    }

    /// Closes the queue and wakes every waiting thread: puts fail with `.closed` from now on; gets
    /// go on returning the items left, then fail with `.closed`.
    ///
    /// - Parameter immediate: also discards the items left (and counts them as done for ``join()``),
    ///   so gets fail at once.
    public func close(immediate: Bool = false) {
        lock.withLock {
            closed = true
            if immediate {
                unfinished -= items.count
                items.removeAll()
                if unfinished == 0 { allDone.broadcast() }
            }
            notEmpty.broadcast()
            notFull.broadcast()
        }
    }
}
