import Foundation
import NIOCore
import SwitchboardStore
import Testing

@testable import SwitchboardAPI

@Suite struct WireMemoTests {
    private func message(_ offset: Int64, id: String = "a", body: String = "x") -> StoredMessage {
        StoredMessage(topic: "t", offset: offset, id: id, timestamp: 0, contentType: nil, body: Data(body.utf8))
    }

    @Test func aMessageIsEncodedOnceHoweverManyAskAndAnotherWithTheSameOffsetAgain() {
        let memo = WireMemo()
        var encodings = 0
        let encode = { (message: StoredMessage) -> ByteBuffer in
            encodings += 1
            return ByteBuffer(string: "\(message.offset):\(message.id)")
        }
        for _ in 0..<1000 {
            #expect(memo.bytes(of: message(1), encode: encode) == ByteBuffer(string: "1:a"))
        }
        #expect(encodings == 1)
        // Another store's message at the same place (a new data directory, say) is not mistaken for it.
        #expect(memo.bytes(of: message(1, id: "b"), encode: encode) == ByteBuffer(string: "1:b"))
        #expect(encodings == 2)
    }

    @Test func theOldestAreForgottenPastTheCapacity() {
        let memo = WireMemo()
        var encodings = 0
        let encode = { (message: StoredMessage) -> ByteBuffer in
            encodings += 1
            return ByteBuffer(string: "\(message.offset)")
        }
        for offset in 1...1025 {
            _ = memo.bytes(of: message(Int64(offset)), encode: encode)
        }
        _ = memo.bytes(of: message(1025), encode: encode)
        #expect(encodings == 1025)
        _ = memo.bytes(of: message(1), encode: encode)
        #expect(encodings == 1026)
    }

    @Test func serverSentEventsAndWebSocketFramesReadTheSameFromTheMemo() {
        let stored = message(7, body: "line one\nline two")
        #expect(
            String(buffer: ServerSentEvents.encode(.messages([stored, stored])))
                == String(repeating: "id: 7\ndata: line one\ndata: line two\n\n", count: 2)
        )
        #expect(
            String(buffer: WebSocketProtocol.message(stored))
                == #"{"type":"message","topic":"t","offset":7,"id":"a","timestamp":0,"data":"line one\nline two"}"#
        )
    }
}
