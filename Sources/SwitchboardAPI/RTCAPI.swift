import Foundation
import NIOCore
import SwitchboardBroker
import SwitchboardEngine
import SwitchboardRTC

/// WebRTC's HTTP side: `GET /v1/rtc/ice-servers` hands a page its STUN/TURN servers with short-lived
/// TURN credentials, and `GET /v1/rtc/rooms/{room}` upgrades to a signaling WebSocket (see
/// `SignalingSession` for its messages).
public struct RTCAPI: Sendable {
    public struct Configuration: Sendable {
        /// Peers in one room at once.
        public var maxPeersPerRoom = 16
        /// Seconds TURN credentials from `/v1/rtc/ice-servers` last.
        public var turnCredentialLifetime = 3600
        /// Largest signaling message.
        public var maxMessageBytes = 64 * 1024

        public init() {}
    }

    let rooms: SignalingRooms
    let iceServers: ICEServers
    let configuration: Configuration

    public init(rooms: SignalingRooms, iceServers: ICEServers, configuration: Configuration) {
        self.rooms = rooms
        self.iceServers = iceServers
        self.configuration = configuration
    }

    public func register(in router: inout Router) {
        let iceServers = self.iceServers
        router.add(.GET, "/v1/rtc/ice-servers") { request in
            try Caller.authorize(.authenticated)
            let hostname = request.head.headers.first(name: "host").map(Self.hostname)
            let entries = iceServers.entries(
                for: try Caller.required().principal?.subject ?? "anonymous",
                hostname: hostname
            )
            var json = JSONObjectWriter()
            json.raw("iceServers", Array(("[" + entries.map(Self.json).joined(separator: ",") + "]").utf8))
            json.number("ttl", iceServers.credentialLifetime)
            return .json(ByteBuffer(bytes: json.finish()))
        }
        // Reached when the upgrade was declined or not asked for: says why.
        router.add(.GET, "/v1/rtc/rooms/{room}") { request in
            let room = request.parameters["room"] ?? ""
            guard TopicName.isValid(room) else {
                throw HTTPError(
                    .badRequest,
                    code: "room_name_invalid",
                    message: "Room names are 1 to 200 characters of A-Z a-z 0-9 . _ -"
                )
            }
            try Caller.authorize(.joinRoom(room))
            if let peer = request.query["peer"], !SignalingSession.isValid(peer: peer) {
                throw HTTPError(
                    .badRequest,
                    code: "peer_id_invalid",
                    message: "Peer ids are 1 to 64 characters of A-Z a-z 0-9 . _ -"
                )
            }
            throw HTTPError(
                .upgradeRequired,
                code: "websocket_required",
                message:
                    "GET /v1/rtc/rooms/{room} must be a WebSocket upgrade (Connection: Upgrade, Upgrade: websocket)",
                headers: ["Upgrade": "websocket"]
            )
        }
    }

    /// The signaling endpoint: with authentication on, the token (`?access_token=`) must allow joining the
    /// room; a refused upgrade is answered by the route (401, 403, 400).
    public func webSocketEndpoint(authentication: Authentication?) -> WebSocketEndpoint {
        let rooms = self.rooms
        return WebSocketEndpoint(path: "/v1/rtc/rooms/{room}", maxMessageBytes: configuration.maxMessageBytes) { head in
            let request = Request(head: head)
            let room = String(request.path.split(separator: "/").last ?? "")
            guard TopicName.isValid(room) else { return nil }
            guard let caller = try? await Caller.of(head, authentication: authentication), caller.may(.joinRoom(room))
            else { return nil }
            let peer = request.query["peer"] ?? UUID().uuidString.lowercased()
            guard SignalingSession.isValid(peer: peer) else { return nil }
            return { channel in
                try channel.pipeline.syncOperations.addHandler(
                    SignalingSession(rooms: rooms, room: room, peer: peer, caller: caller)
                )
            }
        }
    }

    private static func json(_ entry: ICEServers.Entry) -> String {
        var json = JSONObjectWriter()
        json.strings("urls", entry.urls)
        json.string("username", entry.username)
        json.string("credential", entry.credential)
        return String(decoding: json.finish(), as: UTF8.self)
    }

    /// The host of a Host header, without its port or an IPv6 literal's brackets.
    private static func hostname(_ host: String) -> String {
        if host.hasPrefix("["), let end = host.firstIndex(of: "]") {
            return String(host[host.index(after: host.startIndex)..<end])
        }
        return String(host.split(separator: ":").first ?? "")
    }
}
