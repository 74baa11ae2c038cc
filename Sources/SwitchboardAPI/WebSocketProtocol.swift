import Foundation
import NIOCore
import SwitchboardEngine
import SwitchboardStore

/// The JSON messages of `GET /v1/ws`. A client sends
/// `{"op":"subscribe","topic":"T","after":N}` (`after` optional: without it only new messages),
/// `{"op":"unsubscribe","topic":"T"}`, `{"op":"publish","topic":"T","data":"…","ref":"…"}` and
/// `{"op":"ping"}`; the server answers with objects whose `type` is `subscribed`, `unsubscribed`,
/// `message`, `trimmed`, `published`, `pong` or `error`.
enum WebSocketProtocol {
    struct ClientMessage: Decodable {
        var op: String
        var topic: String?
        var after: Int64?
        var data: String?
        var ref: String?
    }

    private static let memo = ThreadWireMemo()

    /// A delivered message, encoded once per thread however many subscribers receive it.
    static func message(_ message: StoredMessage) -> ByteBuffer {
        memo.bytes(of: message, encode: encode)
    }

    private static func encode(_ message: StoredMessage) -> ByteBuffer {
        var json = frame("message", topic: message.topic)
        json.number("offset", message.offset)
        json.string("id", message.id)
        json.number("timestamp", message.timestamp)
        if let body = String(validating: message.body, as: UTF8.self) {
            json.string("data", body)
        } else {
            json.string("dataBase64", message.body.base64EncodedString())
        }
        return ByteBuffer(bytes: json.finish())
    }

    static func subscribed(topic: String, position: Int64) -> ByteBuffer {
        var json = frame("subscribed", topic: topic)
        json.number("position", position)
        return ByteBuffer(bytes: json.finish())
    }

    static func unsubscribed(topic: String) -> ByteBuffer {
        var json = frame("unsubscribed", topic: topic)
        return ByteBuffer(bytes: json.finish())
    }

    static func trimmed(topic: String, earliestOffset: Int64) -> ByteBuffer {
        var json = frame("trimmed", topic: topic)
        json.number("earliestOffset", earliestOffset)
        return ByteBuffer(bytes: json.finish())
    }

    static func published(_ message: StoredMessage, ref: String?) -> ByteBuffer {
        var json = frame("published", topic: message.topic)
        json.number("offset", message.offset)
        json.string("id", message.id)
        json.number("timestamp", message.timestamp)
        json.string("ref", ref)
        return ByteBuffer(bytes: json.finish())
    }

    static let pong = ByteBuffer(string: #"{"type":"pong"}"#)

    static func error(code: String, message: String, ref: String? = nil) -> ByteBuffer {
        var json = frame("error", topic: nil)
        json.string("code", code)
        json.string("message", message)
        json.string("ref", ref)
        return ByteBuffer(bytes: json.finish())
    }

    /// An object beginning with its `type` and, when it concerns one, its `topic`.
    private static func frame(_ type: String, topic: String?) -> JSONObjectWriter {
        var json = JSONObjectWriter()
        json.string("type", type)
        json.string("topic", topic)
        return json
    }
}
