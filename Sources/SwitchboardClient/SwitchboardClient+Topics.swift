import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

extension SwitchboardClient {
    /// Where a published message landed.
    public struct Receipt: Codable, Sendable, Equatable {
        public var topic: String
        public var offset: Int64
        public var id: String
        public var timestamp: Int64
    }

    /// A message as polls return it.
    public struct Message: Codable, Sendable, Equatable {
        public var topic: String
        public var offset: Int64
        public var id: String
        public var timestamp: Int64
        public var contentType: String?
        public var data: String?
        public var dataBase64: String?
    }

    /// One page of a poll.
    public struct Page: Codable, Sendable {
        public var topic: String
        public var messages: [Message]
        public var earliestOffset: Int64
        public var latestOffset: Int64
        public var next: Int64
    }

    /// `POST /v1/topics/{topic}/messages`: returns once the message is durable.
    public func publish(topic: String, body: ByteBuffer, contentType: String = "text/plain") async throws -> Receipt {
        let reply = try await send(
            .POST,
            "/v1/topics/\(topic)/messages",
            headers: ["Content-Type": contentType],
            body: body
        )
        return try decode(Receipt.self, from: reply)
    }

    /// `GET /v1/topics/{topic}/messages`: a short poll, or a long poll when `wait` is given.
    public func messages(topic: String, after: Int64?, limit: Int = 100, wait: Duration? = nil) async throws -> Page {
        var query = "limit=\(limit)"
        if let after { query += "&after=\(after)" }
        if let wait { query += "&wait=\(Double(wait.components.seconds) + Double(wait.components.attoseconds) / 1e18)" }
        return try decode(Page.self, from: try await send(.GET, "/v1/topics/\(topic)/messages?\(query)"))
    }

    /// `GET /v1/topics/{topic}/events`: the topic's Server-Sent Events.
    public func events(topic: String, after: Int64?) async throws -> AsyncThrowingStream<ServerSentEvent, any Error> {
        var request = HTTPClientRequest(
            url: baseURL + "/v1/topics/\(topic)/events" + (after.map { "?after=\($0)" } ?? "")
        )
        request.headers.add(name: "Accept", value: "text/event-stream")
        let response = try await http.execute(request, timeout: .hours(24 * 365))
        guard response.status == .ok else {
            let body = try await response.body.collect(upTo: 1 << 20)
            throw SwitchboardError(Reply(status: response.status, headers: response.headers, body: body))
        }
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    var parser = ServerSentEventParser()
                    for try await line in ByteStream(response.body).lines {
                        if let event = parser.consume(line: line) {
                            continuation.yield(event)
                        }
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}

/// The bytes of a streamed body, one at a time; `lines` splits them at LF (dropping a CR before it).
struct ByteStream: AsyncSequence, Sendable {
    typealias Element = UInt8
    let body: HTTPClientResponse.Body

    init(_ body: HTTPClientResponse.Body) {
        self.body = body
    }

    struct AsyncIterator: AsyncIteratorProtocol {
        var chunks: HTTPClientResponse.Body.AsyncIterator
        var current = ByteBuffer()

        mutating func next() async throws -> UInt8? {
            while current.readableBytes == 0 {
                guard let chunk = try await chunks.next() else { return nil }
                current = chunk
            }
            return current.readInteger(as: UInt8.self)
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(chunks: body.makeAsyncIterator())
    }
}

extension ByteStream {
    var lines: AsyncThrowingStream<String, any Error> {
        let bytes = self
        return AsyncThrowingStream { continuation in
            let task = Task {
                var line: [UInt8] = []
                do {
                    for try await byte in bytes {
                        if byte == UInt8(ascii: "\n") {
                            if line.last == UInt8(ascii: "\r") { line.removeLast() }
                            continuation.yield(String(decoding: line, as: UTF8.self))
                            line.removeAll(keepingCapacity: true)
                        } else {
                            line.append(byte)
                        }
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}
