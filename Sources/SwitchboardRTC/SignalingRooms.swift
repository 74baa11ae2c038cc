import CoreMetrics
import NIOConcurrencyHelpers
import NIOCore

/// The peers of each WebRTC signaling room on this node, and the delivery of their messages: to one
/// peer or to every other. A room exists while someone is in it. Transport-neutral: a peer is an id and
/// a way to deliver text to it.
public final class SignalingRooms: Sendable {
    public typealias Deliver = @Sendable (ByteBuffer) -> Void

    public enum JoinError: Error, Sendable {
        case full(limit: Int)
        case duplicatePeer
    }

    private let maxPeersPerRoom: Int
    private let rooms = NIOLockedValueBox([String: [String: Deliver]]())
    private let roomsGauge: Gauge
    private let peersGauge: Gauge

    public init(maxPeersPerRoom: Int, metrics: any MetricsFactory) {
        self.maxPeersPerRoom = maxPeersPerRoom
        roomsGauge = Gauge(label: "switchboard_rtc_rooms", factory: metrics)
        peersGauge = Gauge(label: "switchboard_rtc_peers", factory: metrics)
    }

    /// Adds `peer` to `room`; answers who else is there.
    public func join(room: String, peer: String, deliver: @escaping Deliver) throws(JoinError) -> [String] {
        let result = rooms.withLockedValue { rooms -> Result<[String], JoinError> in
            var members = rooms[room, default: [:]]
            guard members[peer] == nil else { return .failure(.duplicatePeer) }
            guard members.count < maxPeersPerRoom else { return .failure(.full(limit: maxPeersPerRoom)) }
            let others = members.keys.sorted()
            members[peer] = deliver
            rooms[room] = members
            recordSizes(rooms)
            return .success(others)
        }
        return try result.get()
    }

    /// Removes `peer` from `room`.
    public func leave(room: String, peer: String) {
        rooms.withLockedValue { rooms in
            rooms[room]?[peer] = nil
            if rooms[room]?.isEmpty == true { rooms[room] = nil }
            recordSizes(rooms)
        }
    }

    /// Delivers `text` to `peer` in `room`; `false` when the peer is not there.
    public func deliver(_ text: ByteBuffer, to peer: String, in room: String) -> Bool {
        guard let deliver = rooms.withLockedValue({ $0[room]?[peer] }) else { return false }
        deliver(text)
        return true
    }

    /// Delivers `text` to everyone in `room` but `sender`.
    public func broadcast(_ text: ByteBuffer, in room: String, from sender: String) {
        let others = rooms.withLockedValue { rooms in (rooms[room] ?? [:]).filter { $0.key != sender }.map(\.value) }
        for deliver in others { deliver(text) }
    }

    private func recordSizes(_ rooms: [String: [String: Deliver]]) {
        roomsGauge.record(rooms.count)
        peersGauge.record(rooms.values.reduce(0) { $0 + $1.count })
    }
}
