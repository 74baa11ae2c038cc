import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import Synchronization

/// The slowest requests of the last minute, each with its journey's stages: what the console's overview
/// lists. Requests are kept per slice of the window (six of ten seconds), the slowest few of each, so that
/// a burst of slow requests hides faster ones only while it is itself in the window. A request faster than
/// the slowest few of the current slice is turned away by two atomic loads: the common request never takes
/// the lock. Event streams and held responses (long polls) are not listed: their time is the client's.
public final class SlowRequests: Sendable {
    /// One finished request: its method, path (never its query or fragment, which may hold a token, nor
    /// an absolute-form target's authority), status, when it ended and how long each stage took.
    public struct Entry: Sendable {
        public var method: String
        public var path: String
        public var status: Int
        public var finishedAt: Date
        public var total: TimeAmount
        public var stages: [(JourneyStage, TimeAmount)]
        /// When it ended, on the monotonic clock.
        var ended: NIODeadline
    }

    /// The slowest `capacity` requests of one slice of the window.
    private struct Slice {
        var index: Int64
        var entries: [Entry] = []
    }

    /// How many are listed.
    public let capacity: Int
    /// How long one is listed.
    public let window: TimeAmount
    private let sliceLength: Int64
    private let slices = NIOLockedValueBox<[Slice]>([])
    /// Nanoseconds a request must exceed to be considered while the current slice is full, and that slice.
    private let floor = Atomic<Int64>(0)
    private let floorSlice = Atomic<Int64>(-1)

    public init(capacity: Int = 20, window: TimeAmount = .seconds(60)) {
        self.capacity = capacity
        self.window = window
        self.sliceLength = max(1, window.nanoseconds / 6)
    }

    /// Keeps the request if it is among the slowest of its slice.
    func consider(_ journey: RequestJourney, head: HTTPRequestHead, status: HTTPResponseStatus) {
        let total = journey.total
        let ended = journey.responseFlushed ?? .now()
        let index = Int64(ended.uptimeNanoseconds) / sliceLength
        guard total.nanoseconds > floor.load(ordering: .relaxed) || index != floorSlice.load(ordering: .relaxed)
        else { return }
        let entry = Entry(
            method: head.method.rawValue,
            path: Self.path(of: head.uri),
            status: Int(status.code),
            finishedAt: Date(),
            total: total,
            stages: journey.stageDurations,
            ended: ended
        )
        slices.withLockedValue { slices in
            slices.removeAll { $0.index <= index - 6 }
            let slot =
                slices.firstIndex { $0.index == index }
                ?? {
                    slices.append(Slice(index: index))
                    return slices.count - 1
                }()
            var entries = slices[slot].entries
            let place = entries.firstIndex { $0.total < total } ?? entries.endIndex
            entries.insert(entry, at: place)
            if entries.count > capacity { entries.removeLast() }
            slices[slot].entries = entries
            floor.store(entries.count >= capacity ? entries.last!.total.nanoseconds : 0, ordering: .relaxed)
            floorSlice.store(index, ordering: .relaxed)
        }
    }

    /// The slowest of the window, slowest first.
    public var slowest: [Entry] { slowest(at: .now()) }

    func slowest(at now: NIODeadline) -> [Entry] {
        let entries = slices.withLockedValue { slices in
            slices.flatMap(\.entries)
        }
        return Array(entries.filter { $0.ended + window > now }.sorted { $0.total > $1.total }.prefix(capacity))
    }

    /// The target without query or fragment, and without scheme and authority when in absolute form.
    static func path(of target: String) -> String {
        var path = target.prefix { $0 != "?" && $0 != "#" }
        if let scheme = path.range(of: "://"), !path[..<scheme.lowerBound].contains("/") {
            path = path[scheme.upperBound...].drop { $0 != "/" }
        }
        return String(path)
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
