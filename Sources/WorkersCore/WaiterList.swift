import DequeModule

/// Suspended tasks in arrival order, each under the id it registered with.
package struct WaiterList<Value: Sendable>: Sendable {
    package typealias Continuation = CheckedContinuation<Value, any Error>
    private var entries: Deque<(id: UInt64, continuation: Continuation)> = []

    package init() {}

    package var count: Int { entries.count }
    package var isEmpty: Bool { entries.isEmpty }

    package mutating func append(_ id: UInt64, _ continuation: Continuation) {
        entries.append((id, continuation))
    }

    package mutating func popFirst() -> Continuation? {
        entries.popFirst()?.continuation
    }

    /// Removes the waiter with `id`, if it is still waiting (cancellation is rare, so O(n) is fine).
    package mutating func remove(id: UInt64) -> Continuation? {
        guard let index = entries.firstIndex(where: { $0.id == id }) else { return nil }
        return entries.remove(at: index).continuation
    }

    package mutating func removeAll() -> [Continuation] {
        defer { entries.removeAll() }
        return entries.map(\.continuation)
    }
}
