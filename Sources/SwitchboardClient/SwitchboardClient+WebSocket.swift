import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

extension SwitchboardClient {
    /// Subscribes to `topic` over `GET /v1/ws` (NIO's WebSocket client) and yields its messages; `after`
    /// as in the protocol (`nil`: new messages only). The stream ends when the server closes.
    public func webSocketMessages(topic: String, after: Int64?) async throws -> AsyncThrowingStream<Message, any Error>
    {
        guard let url = URL(string: baseURL), let host = url.host else {
            throw SwitchboardError(status: .badRequest, code: "invalid_url", message: "Cannot connect to \(baseURL)")
        }
        let upgrade = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: host, port: url.port ?? 80) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let upgrader = NIOTypedWebSocketClientUpgrader<WebSocketUpgrade>(
                        upgradePipelineHandler: { channel, _ in
                            channel.eventLoop.makeCompletedFuture {
                                .upgraded(
                                    try NIOAsyncChannel<WebSocketFrame, WebSocketFrame>(
                                        wrappingChannelSynchronously: channel
                                    )
                                )
                            }
                        }
                    )
                    let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/v1/ws", headers: ["Host": host])
                    let configuration = NIOTypedHTTPClientUpgradeConfiguration(
                        upgradeRequestHead: head,
                        upgraders: [upgrader],
                        notUpgradingCompletionHandler: { channel in channel.eventLoop.makeSucceededFuture(.refused) }
                    )
                    return try channel.pipeline.syncOperations.configureUpgradableHTTPClientPipeline(
                        configuration: .init(upgradeConfiguration: configuration)
                    )
                }
            }
        guard case .upgraded(let channel) = try await upgrade.get() else {
            throw SwitchboardError(
                status: .badRequest,
                code: "websocket_refused",
                message: "The server refused the upgrade"
            )
        }
        let subscribe = #"{"op":"subscribe","topic":"\#(topic)""# + (after.map { #","after":\#($0)}"# } ?? "}")
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    try await channel.executeThenClose { inbound, outbound in
                        let maskKey = WebSocketMaskingKey.random()
                        try await outbound.write(
                            WebSocketFrame(
                                fin: true,
                                opcode: .text,
                                maskKey: maskKey,
                                data: ByteBuffer(string: subscribe)
                            )
                        )
                        for try await frame in inbound {
                            switch frame.opcode {
                            case .text:
                                try Self.yieldMessage(from: frame, to: continuation)
                            case .connectionClose:
                                return
                            default:
                                continue
                            }
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

    private static func yieldMessage(
        from frame: WebSocketFrame,
        to continuation: AsyncThrowingStream<Message, any Error>.Continuation
    ) throws {
        struct ServerFrame: Decodable {
            var type: String
            var code: String?
            var message: String?
        }
        let bytes = Data(frame.unmaskedData.readableBytesView)
        let kind = try JSONDecoder().decode(ServerFrame.self, from: bytes)
        switch kind.type {
        case "message":
            continuation.yield(try JSONDecoder().decode(Message.self, from: bytes))
        case "error":
            throw SwitchboardError(status: .badRequest, code: kind.code ?? "error", message: kind.message ?? "")
        default:
            break  // subscribed, trimmed, pong
        }
    }
}

/// What the upgrade request turned into.
enum WebSocketUpgrade: Sendable {
    case upgraded(NIOAsyncChannel<WebSocketFrame, WebSocketFrame>)
    case refused
}
