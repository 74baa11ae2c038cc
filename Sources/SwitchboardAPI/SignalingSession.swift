import Foundation
import NIOCore
import NIOWebSocket
import SwitchboardBroker
import SwitchboardEngine
import SwitchboardJobs
import SwitchboardRTC

/// One peer's `GET /v1/rtc/rooms/{room}?peer=ID` WebSocket: WebRTC signaling between the peers of a room.
///
/// On joining, the peer gets `{"type":"welcome","room","peer","peers":[…]}` and the others
/// `{"type":"joined","peer"}`; when it leaves they get `{"type":"left","peer"}`. A peer sends
/// `{"op":"signal","to":"ID","data":…}` — an offer, an answer or an ICE candidate, any JSON — and the
/// peer `to` (or, without `to`, every other peer) gets `{"type":"signal","from","data"}`. `{"op":"ping"}`
/// gets `{"type":"pong"}`. Mistakes get `{"type":"error","code","status","message"}`; a full room or a
/// peer id already there ends the socket after the error (1008).
final class SignalingSession: JSONWebSocketSession {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private struct ClientMessage: Decodable {
        var op: String
        var to: String?
        var data: JSONValue?
    }

    private let rooms: SignalingRooms
    private let room: String
    private let peer: String
    /// Whose token opened the socket; `nil` with authentication off.
    private let caller: Caller
    private var joined = false
    var closing = false
    private var expiry: Scheduled<Void>?

    init(rooms: SignalingRooms, room: String, peer: String, caller: Caller) {
        self.rooms = rooms
        self.room = room
        self.peer = peer
        self.caller = caller
    }

    /// Peer ids are 1 to 64 characters of `A-Z a-z 0-9 . _ -`.
    static func isValid(peer: String) -> Bool {
        TopicName.isValid(peer, maxLength: 64)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        let deliver: SignalingRooms.Deliver = { text in
            channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .text, data: text), promise: nil)
        }
        do {
            let others = try rooms.join(room: room, peer: peer, deliver: deliver)
            joined = true
            var json = Self.frame("welcome")
            json.string("room", room)
            json.string("peer", peer)
            json.strings("peers", others)
            send(json, context: context)
            var announcement = Self.frame("joined")
            announcement.string("peer", peer)
            rooms.broadcast(ByteBuffer(bytes: announcement.finish()), in: room, from: peer)
        } catch .full(let limit) {
            refuse("room_full", status: 409, "Room \(room) holds at most \(limit) peers", context: context)
        } catch {
            refuse("peer_id_taken", status: 409, "A peer \(peer) is already in room \(room)", context: context)
        }
        guard joined, let principal = caller.principal else { return }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let delay = TimeAmount.milliseconds(Int64(principal.expiresAt.timeIntervalSinceNow * 1000))
        expiry = context.eventLoop.scheduleTask(in: delay) {
            let (session, context) = loopBound.value
            session.refuse(
                "token_expired",
                status: 401,
                "The token expired; reconnect with a new one",
                context: context
            )
        }
    }

    func receive(text: ByteBuffer, context: ChannelHandlerContext) {
        handle(Data(text.readableBytesView), context: context)
    }

    func receiveBinary(context: ChannelHandlerContext) {
        error("binary_not_supported", status: 400, "Send JSON text frames", context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        expiry?.cancel()
        if joined {
            joined = false
            rooms.leave(room: room, peer: peer)
            var json = Self.frame("left")
            json.string("peer", peer)
            rooms.broadcast(ByteBuffer(bytes: json.finish()), in: room, from: peer)
        }
        context.fireChannelInactive()
    }

    private func handle(_ text: Data, context: ChannelHandlerContext) {
        guard joined else { return }
        guard let message = try? JSONDecoder().decode(ClientMessage.self, from: text) else {
            return error("invalid_json", status: 400, #"Expected a JSON object with an "op""#, context: context)
        }
        switch message.op {
        case "signal":
            guard let data = message.data, let encoded = try? JSONEncoder().encode(data) else {
                return error("invalid_message", status: 400, "signal needs data", context: context)
            }
            var json = Self.frame("signal")
            json.string("from", peer)
            json.raw("data", encoded)
            let frame = ByteBuffer(bytes: json.finish())
            guard let to = message.to else { return rooms.broadcast(frame, in: room, from: peer) }
            if to == peer || !rooms.deliver(frame, to: to, in: room) {
                error("peer_not_found", status: 404, "No peer \(to) in room \(room)", context: context)
            }
        case "ping":
            send(Self.frame("pong"), context: context)
        default:
            error("unknown_op", status: 400, "Unknown op '\(message.op)'", context: context)
        }
    }

    private func error(_ code: String, status: Int, _ message: String, context: ChannelHandlerContext) {
        var json = Self.frame("error")
        json.string("code", code)
        json.number("status", status)
        json.string("message", message)
        send(json, context: context)
    }

    /// An error, then the end of the socket.
    private func refuse(_ code: String, status: Int, _ message: String, context: ChannelHandlerContext) {
        error(code, status: status, message, context: context)
        close(context: context, code: .policyViolation)
    }

    private func send(_ json: JSONObjectWriter, context: ChannelHandlerContext) {
        var json = json
        let frame = WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(bytes: json.finish()))
        context.writeAndFlush(wrapOutboundOut(frame), promise: nil)
    }

    private static func frame(_ type: String) -> JSONObjectWriter {
        var json = JSONObjectWriter()
        json.string("type", type)
        return json
    }
}
