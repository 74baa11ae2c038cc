import NIOCore
import NIOHTTP1

/// What a route handler answers: a status, headers and a body that is either whole or streamed.
public struct Response: Sendable {
    public var status: HTTPResponseStatus
    public var headers: HTTPHeaders
    public var body: Body
    /// Whether the handler held the request open on purpose before answering (a long poll): its time is
    /// then the client's wait, and it is left out of the slowest requests.
    public var isHeld = false

    /// A response body.
    public enum Body: Sendable {
        /// Bytes known in full; sent with `Content-Length`.
        case buffer(ByteBuffer)
        /// Bytes produced over time (SSE, long responses); sent chunked as the writer is called.
        case stream(@Sendable (ResponseBodyWriter) async throws -> Void)
    }

    public init(status: HTTPResponseStatus = .ok, headers: HTTPHeaders = [:], body: Body = .buffer(ByteBuffer())) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A plain-text response.
    public static func text(_ text: String, status: HTTPResponseStatus = .ok) -> Response {
        Response(
            status: status,
            headers: ["Content-Type": "text/plain; charset=utf-8"],
            body: .buffer(ByteBuffer(string: text))
        )
    }

    /// A JSON response from bytes that are already encoded.
    public static func json(_ bytes: ByteBuffer, status: HTTPResponseStatus = .ok) -> Response {
        Response(status: status, headers: ["Content-Type": "application/json"], body: .buffer(bytes))
    }

    /// Prometheus' text exposition format, written by `emit` (a registry's `emit(into:)`).
    public static func prometheus(_ emit: (inout [UInt8]) -> Void) -> Response {
        var text: [UInt8] = []
        emit(&text)
        return Response(
            headers: ["Content-Type": "text/plain; version=0.0.4; charset=utf-8"],
            body: .buffer(ByteBuffer(bytes: text))
        )
    }

    /// Whether this is a Server-Sent Events stream: a streamed body of type `text/event-stream` (in any
    /// letter case; compared without allocating).
    var isEventStream: Bool {
        guard case .stream = body, let type = headers.first(name: "content-type") else { return false }
        let wanted = "text/event-stream".utf8
        return type.utf8.count >= wanted.count && zip(type.utf8, wanted).allSatisfy { $0 | 0x20 == $1 }
    }

    /// This response, marked held open on purpose when `isHeld` (a long poll that was asked to wait).
    public func held(_ isHeld: Bool) -> Response {
        var response = self
        response.isHeld = isHeld
        return response
    }

    /// The JSON error response for `error`.
    public static func error(_ error: HTTPError) -> Response {
        var response = Response.json(error.jsonBody, status: error.status)
        response.headers.add(contentsOf: error.headers)
        return response
    }
}

/// Writes the chunks of a streamed response body.
public struct ResponseBodyWriter: Sendable {
    let writeChunk: @Sendable (ByteBuffer) async throws -> Void

    public init(_ writeChunk: @escaping @Sendable (ByteBuffer) async throws -> Void) {
        self.writeChunk = writeChunk
    }

    /// Sends `chunk` to the client; throws when the client has gone.
    public func write(_ chunk: ByteBuffer) async throws {
        try await writeChunk(chunk)
    }

    public func write(_ text: String) async throws {
        try await writeChunk(ByteBuffer(string: text))
    }
}
