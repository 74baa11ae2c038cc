import Logging
import NIOCore
import NIOHTTP1

/// Serves the requests of one HTTP/1.1 connection in order: routes each head, reads the body within
/// the route's limit, runs the handler and writes its response. Never throws out of its task.
struct HTTPConnection {
    typealias Channel = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>
    typealias Parts = NIOAsyncChannelInboundStream<HTTPServerRequestPart>.AsyncIterator
    typealias Outbound = NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>

    let responder: any HTTPResponder
    let logger: Logger

    func run(_ channel: Channel) async {
        let remoteAddress = channel.channel.remoteAddress
        do {
            try await channel.executeThenClose { inbound, outbound in
                var parts = inbound.makeAsyncIterator()
                while let part = try await parts.next() {
                    // Parts of a request abandoned after an early response are skipped.
                    guard case .head(let head) = part else { continue }
                    let keepAlive = try await serve(
                        head,
                        remoteAddress: remoteAddress,
                        parts: &parts,
                        outbound: outbound
                    )
                    guard keepAlive else { return }
                }
            }
        } catch {
            logger.debug("Connection ended", metadata: ["error": "\(error)"])
        }
    }

    /// Serves one request; returns whether the connection may carry another.
    private func serve(
        _ head: HTTPRequestHead,
        remoteAddress: SocketAddress?,
        parts: inout Parts,
        outbound: Outbound
    ) async throws -> Bool {
        let handler: Route.Handler
        let maxBodyBytes: Int
        let parameters: [String: String]
        switch responder.route(head) {
        case .failure(let error):
            // The unread body of a refused request is skipped by the caller.
            return try await write(.error(error), for: head, outbound: outbound)
        case .handler(let routeHandler, let limit, let values):
            (handler, maxBodyBytes, parameters) = (routeHandler, limit, values)
        }
        if let declared = head.headers.first(name: "content-length").flatMap(Int.init), declared > maxBodyBytes {
            _ = try await write(.error(.bodyTooLarge(limit: maxBodyBytes)), for: head, outbound: outbound, close: true)
            return false
        }
        if head.expectsContinue {
            try await outbound.write(.head(HTTPResponseHead(version: head.version, status: .continue)))
        }
        guard let body = try await readBody(of: head, limit: maxBodyBytes, parts: &parts, outbound: outbound) else {
            return false
        }
        let request = Request(head: head, body: body, parameters: parameters, remoteAddress: remoteAddress)
        let response: Response
        do {
            response = try await handler(request)
        } catch let error as HTTPError {
            response = .error(error)
        } catch is CancellationError {
            throw CancellationError()  // The server is closing this connection.
        } catch {
            logger.error("Handler failed", metadata: ["uri": "\(head.uri)", "error": "\(error)"])
            response = .error(.internalError)
        }
        return try await write(response, for: head, outbound: outbound)
    }

    /// Reads the body up to `limit`; answers 413 and returns `nil` past it or when the client goes away.
    private func readBody(
        of head: HTTPRequestHead,
        limit: Int,
        parts: inout Parts,
        outbound: Outbound
    ) async throws -> ByteBuffer? {
        var body: ByteBuffer?
        while let part = try await parts.next() {
            switch part {
            case .head:
                return nil  // The decoder never yields a head before the previous end.
            case .body(var chunk):
                if (body?.readableBytes ?? 0) + chunk.readableBytes > limit {
                    _ = try await write(.error(.bodyTooLarge(limit: limit)), for: head, outbound: outbound, close: true)
                    return nil
                }
                if body == nil {
                    body = chunk
                } else {
                    body!.writeBuffer(&chunk)
                }
            case .end:
                return body ?? ByteBuffer()
            }
        }
        return nil
    }

    /// Writes `response`; returns whether the connection stays open.
    private func write(
        _ response: Response,
        for request: HTTPRequestHead,
        outbound: Outbound,
        close: Bool = false
    ) async throws -> Bool {
        let keepAlive = request.isKeepAlive && !close
        var head = HTTPResponseHead(version: request.version, status: response.status, headers: response.headers)
        if !keepAlive {
            head.headers.replaceOrAdd(name: "connection", value: "close")
        }
        let sendsBody = request.method != .HEAD
        switch response.body {
        case .buffer(let buffer):
            head.headers.replaceOrAdd(name: "content-length", value: String(buffer.readableBytes))
            if sendsBody && buffer.readableBytes > 0 {
                try await outbound.write(contentsOf: [.head(head), .body(.byteBuffer(buffer)), .end(nil)])
            } else {
                try await outbound.write(contentsOf: [.head(head), .end(nil)])
            }
        case .stream(let produce):
            try await outbound.write(.head(head))
            if sendsBody {
                try await produce(ResponseBodyWriter { chunk in try await outbound.write(.body(.byteBuffer(chunk))) })
            }
            try await outbound.write(.end(nil))
        }
        return keepAlive
    }
}

extension HTTPRequestHead {
    /// Whether the client sent `Expect: 100-continue` and waits for a go-ahead before the body.
    var expectsContinue: Bool {
        headers["expect"].contains { $0.lowercased() == "100-continue" }
    }
}
