import Logging
import NIOCore
import NIOHTTP1

/// Requests the engine refuses before any route sees them (malformed, oversized or slow heads): each is
/// answered with a JSON error and `Connection: close`, counted, and written to the access log.
struct Refusals: Sendable {
    let metrics: EngineMetrics
    let accessLog: AccessLog?

    /// Every code a refused request can get.
    static let codes = [
        "header_too_large", "invalid_request_line", "not_http", "version_not_supported", "invalid_header",
        "invalid_host", "invalid_content_length", "ambiguous_framing", "invalid_transfer_encoding",
        "unsupported_transfer_coding", "invalid_chunk", "header_timeout",
        // Whatever else a refusal is called: counted here rather than lost.
        "malformed_request",
    ]

    /// Counts `error` and writes its access-log line.
    func record(_ error: HTTPError, peer: SocketAddress?) {
        metrics.recordRefusal(error)
        accessLog?.write(
            "refused \(error.status.code)",
            fields: ["code": error.code, "peer": peer?.description ?? "?"],
            source: "SwitchboardEngine"
        )
    }

    /// The head and body that answer a refused request.
    static func response(to error: HTTPError) -> (HTTPResponseHead, ByteBuffer) {
        let body = error.jsonBody
        var headers = error.headers
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: String(body.readableBytes))
        headers.add(name: "Connection", value: "close")
        return (HTTPResponseHead(version: .http1_1, status: error.status, headers: headers), body)
    }

    /// Records `error`, writes its answer from `context` towards the socket, then closes the connection.
    func refuse(_ error: HTTPError, context: ChannelHandlerContext) {
        record(error, peer: context.channel.remoteAddress)
        let (head, body) = Self.response(to: error)
        context.write(NIOAny(HTTPServerResponsePart.head(head)), promise: nil)
        context.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(body))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }
}
