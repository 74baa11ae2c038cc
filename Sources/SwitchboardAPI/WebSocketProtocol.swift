import Foundation
import NIOCore
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

    static func message(_ message: StoredMessage) -> ByteBuffer {
        var text = #"{"type":"message","topic":"\#(message.topic)","offset":\#(message.offset),"#
        text += #""id":"\#(message.id)","timestamp":\#(message.timestamp),"#
        if let body = String(validating: message.body, as: UTF8.self) {
            text += #""data":\#(jsonString(body))}"#
        } else {
            text += #""dataBase64":"\#(message.body.base64EncodedString())"}"#
        }
        return ByteBuffer(string: text)
    }

    static func subscribed(topic: String, position: Int64) -> ByteBuffer {
        ByteBuffer(string: #"{"type":"subscribed","topic":"\#(topic)","position":\#(position)}"#)
    }

    static func unsubscribed(topic: String) -> ByteBuffer {
        ByteBuffer(string: #"{"type":"unsubscribed","topic":"\#(topic)"}"#)
    }

    static func trimmed(topic: String, earliestOffset: Int64) -> ByteBuffer {
        ByteBuffer(string: #"{"type":"trimmed","topic":"\#(topic)","earliestOffset":\#(earliestOffset)}"#)
    }

    static func published(_ message: StoredMessage, ref: String?) -> ByteBuffer {
        var text = #"{"type":"published","topic":"\#(message.topic)","offset":\#(message.offset),"#
        text += #""id":"\#(message.id)","timestamp":\#(message.timestamp)"#
        if let ref {
            text += #","ref":\#(jsonString(ref))"#
        }
        return ByteBuffer(string: text + "}")
    }

    static let pong = ByteBuffer(string: #"{"type":"pong"}"#)

    static func error(code: String, message: String, ref: String? = nil) -> ByteBuffer {
        var text = #"{"type":"error","code":"\#(code)","message":\#(jsonString(message))"#
        if let ref {
            text += #","ref":\#(jsonString(ref))"#
        }
        return ByteBuffer(string: text + "}")
    }

    /// `text` as a JSON string literal, quotes included.
    static func jsonString(_ text: String) -> String {
        // Encoding a String cannot fail.
        String(decoding: try! encoder.encode(text), as: UTF8.self)
    }

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .withoutEscapingSlashes
        return encoder
    }()
}
