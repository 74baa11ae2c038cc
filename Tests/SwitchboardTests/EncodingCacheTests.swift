import Foundation
import NIOCore
import SwitchboardStore
import Synchronization
import Testing

@testable import SwitchboardAPI

@Suite struct EncodingCacheTests {
    private func message(_ offset: Int64) -> StoredMessage {
        StoredMessage(
            topic: "t",
            offset: offset,
            id: "id\(offset)",
            timestamp: 1,
            contentType: nil,
            body: Data("m".utf8)
        )
    }

    @Test func encodesEachMessageOncePerFormatAndForgetsTheOldest() {
        let cache = EncodingCache(capacity: 2)
        let calls = Mutex(0)
        let encode: (StoredMessage) -> ByteBuffer = { message in
            calls.withLock { $0 += 1 }
            return ByteBuffer(string: "\(message.offset)")
        }
        for _ in 0..<100 {
            #expect(String(buffer: cache.encoded(message(1), as: .webSocket, by: encode)) == "1")
        }
        #expect(calls.withLock { $0 } == 1)
        _ = cache.encoded(message(1), as: .serverSentEvent, by: encode)
        #expect(calls.withLock { $0 } == 2)
        _ = cache.encoded(message(2), as: .webSocket, by: encode)  // Evicts (1, webSocket).
        _ = cache.encoded(message(1), as: .webSocket, by: encode)
        #expect(calls.withLock { $0 } == 4)
    }
}
