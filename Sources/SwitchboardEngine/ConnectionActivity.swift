import NIOCore

/// Facts about one connection shared by the handlers of its pipeline, all on the channel's event loop:
/// byte counts, the TLS handshake and the arrival of the first byte of the request not yet parsed.
final class ConnectionActivity {
    /// When the socket was accepted.
    let acceptedAt: NIODeadline
    /// When the TLS handshake completed; `nil` on cleartext connections.
    var handshakeCompletedAt: NIODeadline?
    private(set) var bytesRead = 0
    private(set) var bytesWritten = 0
    /// When the first byte of the next, not yet parsed, request arrived; `nil` until one does.
    private(set) var nextRequestStartedAt: NIODeadline?
    /// Whether bytes of a request not yet parsed have arrived.
    var hasRequestBytes: Bool { nextRequestStartedAt != nil }
    /// Called when the first byte of a new request arrives (the timeout handler listens).
    var onRequestBytes: (() -> Void)?

    init(acceptedAt: NIODeadline = .now()) {
        self.acceptedAt = acceptedAt
    }

    func didRead(_ count: Int) {
        bytesRead += count
        if nextRequestStartedAt == nil {
            nextRequestStartedAt = .now()
            onRequestBytes?()
        }
    }

    func didWrite(_ count: Int) {
        bytesWritten += count
    }

    /// Hands over the start of the request whose head was just parsed and waits for the next one.
    func takeRequestStart() -> NIODeadline? {
        defer { nextRequestStartedAt = nil }
        return nextRequestStartedAt
    }
}

/// The first handler of a connection: counts raw bytes both ways and notes when a request begins.
final class SocketActivityHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    private let activity: ConnectionActivity

    init(activity: ConnectionActivity) {
        self.activity = activity
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        activity.didRead(unwrapInboundIn(data).readableBytes)
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        activity.didWrite(unwrapOutboundIn(data).readableBytes)
        context.write(data, promise: promise)
    }
}
