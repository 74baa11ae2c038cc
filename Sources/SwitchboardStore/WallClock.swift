import Foundation
import Synchronization

/// The time as the store records it, in milliseconds since 1970. Features that decide by the time (lease
/// expiry, retention, upload expiry) read it here rather than from `Date()`, so that tests can move it.
public protocol WallClock: Sendable {
    func now() -> Int64
}

/// The system's clock.
public struct SystemWallClock: WallClock {
    public init() {}

    public func now() -> Int64 { Date().millisecondsSince1970 }
}

/// A clock that moves only when told: leases expire and retention passes without anyone waiting.
package final class ManualWallClock: WallClock {
    private let milliseconds: Atomic<Int64>

    package init(_ start: Int64 = Date().millisecondsSince1970) {
        milliseconds = Atomic(start)
    }

    package func now() -> Int64 { milliseconds.load(ordering: .relaxed) }

    package func advance(by duration: Duration) {
        milliseconds.add(duration.milliseconds, ordering: .relaxed)
    }
}
