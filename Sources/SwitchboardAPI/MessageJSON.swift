import Foundation
import NIOCore
import NIOHTTP1
import SwitchboardEngine
import SwitchboardStore

/// How a stored message looks in JSON: `data` when its bytes are UTF-8 text, else `dataBase64`.
struct MessageJSON: Codable, Sendable, Equatable {
    var topic: String
    var offset: Int64
    var id: String
    var timestamp: Int64
    var contentType: String?
    var data: String?
    var dataBase64: String?

    init(_ message: StoredMessage) {
        topic = message.topic
        offset = message.offset
        id = message.id
        timestamp = message.timestamp
        contentType = message.contentType
        if let text = String(validating: message.body, as: UTF8.self) {
            data = text
        } else {
            dataBase64 = message.body.base64EncodedString()
        }
    }
}

/// The answer to a poll.
struct MessagesJSON: Codable, Sendable {
    var topic: String
    var messages: [MessageJSON]
    /// The first offset still held.
    var earliestOffset: Int64
    /// The newest offset, 0 for an empty topic.
    var latestOffset: Int64
    /// The `after` to ask with next.
    var next: Int64
}

extension Response {
    /// `value` encoded as JSON.
    static func json(_ value: some Encodable, status: HTTPResponseStatus = .ok) throws -> Response {
        .json(ByteBuffer(bytes: try encoder.encode(value)), status: status)
    }

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()
}
