import NIOCore
import NIOHTTP1
import NIOWebSocket

/// A path where `GET` requests with `Upgrade: websocket` become WebSocket connections (RFC 6455).
///
/// The engine does the handshake (`NIOWebSocketServerUpgrader`) and reassembles fragmented messages;
/// `configure` adds the handlers that speak the application protocol over `WebSocketFrame`s. An upgrade
/// is honoured on a connection's first request, as browsers and clients send it.
public struct WebSocketEndpoint: Sendable {
    public var path: String
    /// Largest message, after reassembly of fragments.
    public var maxMessageBytes: Int
    /// Adds the application's frame handlers to the upgraded channel, on its event loop.
    public var configure: @Sendable (any Channel, HTTPRequestHead) throws -> Void

    public init(
        path: String,
        maxMessageBytes: Int = 1 << 20,
        configure: @escaping @Sendable (any Channel, HTTPRequestHead) throws -> Void
    ) {
        self.path = path
        self.maxMessageBytes = maxMessageBytes
        self.configure = configure
    }

    func makeUpgrader() -> NIOWebSocketServerUpgrader {
        let endpoint = self
        return NIOWebSocketServerUpgrader(
            maxFrameSize: min(maxMessageBytes, Int(UInt32.max)),
            automaticErrorHandling: true,
            shouldUpgrade: { channel, head in
                let path = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0]
                return channel.eventLoop.makeSucceededFuture(path == endpoint.path ? HTTPHeaders() : nil)
            },
            upgradePipelineHandler: { channel, head in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        NIOWebSocketFrameAggregator(
                            minNonFinalFragmentSize: 0,
                            maxAccumulatedFrameCount: 1024,
                            maxAccumulatedFrameSize: endpoint.maxMessageBytes
                        )
                    )
                    try endpoint.configure(channel, head)
                }
            }
        )
    }
}
