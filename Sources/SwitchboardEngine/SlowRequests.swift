import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import Synchronization

/// The slowest requests of the last minute, each with its journey's stages: what the console's overview
/// lists. A request faster than the slowest few seen lately is turned away by one atomic load, so the
/// common request never takes the lock.
public final class SlowRequests: Sendable {
    /// One finished request: its method, path (never its query, which may hold a token), status, when it
    /// ended and how long each stage took.
    public struct Entry: Sendable {
        public var method: String
        public var path: String
        public var status: Int
        public var finishedAt: Date
        public var total: TimeAmount
        public var stages: [(JourneyStage, TimeAmount)]
        /// When the entry leaves the list (on the monotonic clock).
        var expires: NIODeadline
    }

    /// How many are kept.
    public let capacity: Int
    /// How long one is kept.
    public let window: TimeAmount
    private let entries = NIOLockedValueBox<[Entry]>([])
    /// Nanoseconds a request must take to be considered while the list is full: its fastest entry's.
    private let floor = Atomic<Int64>(0)
    /// Uptime nanoseconds at which an entry expires and `floor` no longer holds.
    private let floorExpires = Atomic<Int64>(0)

    public init(capacity: Int = 20, window: TimeAmount = .seconds(60)) {
        self.capacity = capacity
        self.window = window
    }

    /// Keeps the request if it is among the slowest of the window.
    func consider(_ journey: RequestJourney, head: HTTPRequestHead, status: HTTPResponseStatus) {
        let total = journey.total
        let now = journey.responseFlushed ?? .now()
        guard
            total.nanoseconds > floor.load(ordering: .relaxed)
                || now.uptimeNanoseconds >= UInt64(floorExpires.load(ordering: .relaxed))
        else { return }
        let entry = Entry(
            method: head.method.rawValue,
            path: String(head.uri.prefix { $0 != "?" }),
            status: Int(status.code),
            finishedAt: Date(),
            total: total,
            stages: journey.stageDurations,
            expires: now + window
        )
        entries.withLockedValue { entries in
            entries.removeAll { $0.expires <= now }
            let place = entries.firstIndex { $0.total < total } ?? entries.endIndex
            entries.insert(entry, at: place)
            if entries.count > capacity { entries.removeLast() }
            publishFloor(of: entries)
        }
    }

    /// The entries of the window, slowest first.
    public var slowest: [Entry] { slowest(at: .now()) }

    func slowest(at now: NIODeadline) -> [Entry] {
        entries.withLockedValue { entries in
            entries.removeAll { $0.expires <= now }
            publishFloor(of: entries)
            return entries
        }
    }

    /// Below capacity everything is considered; at it, only what is slower than the fastest kept, until
    /// the first entry expires.
    private func publishFloor(of entries: [Entry]) {
        let full = entries.count >= capacity
        floor.store(full ? entries.last!.total.nanoseconds : 0, ordering: .relaxed)
        let expiry = entries.map(\.expires.uptimeNanoseconds).min() ?? 0
        floorExpires.store(full ? Int64(clamping: expiry) : 0, ordering: .relaxed)
    }

    /// `{"requests":[{"method","path","status","finishedAt","totalMicroseconds","stages":{stage: µs}}]}`.
    public func json() -> [UInt8] {
        var body = JSONObjectWriter(capacity: 4096)
        body.raw(
            "requests",
            JSONObjectWriter.array(slowest) { writer, entry in
                writer.string("method", entry.method)
                writer.string("path", entry.path)
                writer.number("status", entry.status)
                writer.number("finishedAt", Int64(entry.finishedAt.timeIntervalSince1970 * 1000))
                writer.number("totalMicroseconds", entry.total.nanoseconds / 1000)
                var stages = JSONObjectWriter()
                for (stage, duration) in entry.stages {
                    stages.number(stage.rawValue, duration.nanoseconds / 1000)
                }
                writer.raw("stages", stages.finish())
            }
        )
        return body.finish()
    }
}
