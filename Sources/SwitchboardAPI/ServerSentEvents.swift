import NIOCore
import SwitchboardBroker
import SwitchboardStore

/// The `text/event-stream` framing of subscription events (WHATWG HTML, "Server-sent events").
enum ServerSentEvents {
    /// The last event of a stream whose token expired.
    static let tokenExpired = ByteBuffer(
        string:
            #"event: token_expired\#ndata: {"code":"token_expired","message":"The token expired; reconnect with a new one"}\#n\#n"#
    )

    private static let memo = ThreadWireMemo()

    /// One event per message, `id:` its offset, one `data:` line per line of its body; a `trimmed`
    /// event when retention removed messages the client had not read.
    static func encode(_ event: Subscription.Event) -> ByteBuffer {
        var buffer = ByteBuffer()
        switch event {
        case .messages(let messages):
            for message in messages {
                var event = memo.bytes(of: message, encode: encode)
                buffer.writeBuffer(&event)
            }
        case .trimmed(let earliest):
            buffer.writeString("event: trimmed\nid: \(earliest - 1)\ndata: {\"earliestOffset\":\(earliest)}\n\n")
        }
        return buffer
    }

    private static func encode(_ message: StoredMessage) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeString("id: \(message.offset)\n")
        let text = String(decoding: message.body, as: UTF8.self)
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            buffer.writeString("data: ")
            buffer.writeString(line.hasSuffix("\r") ? String(line.dropLast()) : String(line))
            buffer.writeString("\n")
        }
        buffer.writeString("\n")
        return buffer
    }
}
