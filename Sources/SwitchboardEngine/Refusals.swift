import Logging
import NIOCore
import NIOHTTP1

/// Requests the pipeline refuses before any route sees them (parse errors, oversized or slow heads):
/// each is answered with a JSON error and `Connection: close`, counted, and written to the access log.
struct Refusals: Sendable {
    let metrics: EngineMetrics
    let accessLogger: Logger?

    /// Writes `error` from `context` towards the socket, records it, then closes the connection.
    func refuse(_ error: HTTPError, context: ChannelHandlerContext) {
        metrics.recordRefusal(error)
        accessLogger?.info(
            "refused \(error.status.code)",
            metadata: [
                "code": "\(error.code)",
                "peer": "\(context.channel.remoteAddress?.description ?? "?")",
            ]
        )
        let body = error.jsonBody
        var headers = error.headers
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: String(body.readableBytes))
        headers.add(name: "Connection", value: "close")
        let head = HTTPResponseHead(version: .http1_1, status: error.status, headers: headers)
        context.write(NIOAny(HTTPServerResponsePart.head(head)), promise: nil)
        context.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(body))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }
}
