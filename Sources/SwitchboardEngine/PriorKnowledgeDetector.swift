import NIOCore

/// The first handler of a cleartext connection when h2c is on: it holds the first bytes until they
/// either are the HTTP/2 connection preface (RFC 9113 §3.4, "prior knowledge") or can no longer be,
/// then configures the pipeline for that version, hands the held bytes on and removes itself.
///
/// Almost every HTTP/1.1 request is told apart by its first byte; only a prefix of the preface
/// (`PRI …`) is waited for, and not longer than `headerTimeout`. A connection that sends nothing at all
/// is closed after `idleTimeout`, as an idle keep-alive connection would be: no client parks here.
final class PriorKnowledgeDetector: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    enum Version {
        case http1
        case http2
    }

    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    private let idleTimeout: TimeAmount
    private let headerTimeout: TimeAmount
    private let configure: (Version) throws -> Void
    private var held: ByteBuffer?
    private var timer: Scheduled<Void>?

    /// - Parameter configure: adds the handlers of the detected version behind this one.
    init(idleTimeout: TimeAmount, headerTimeout: TimeAmount, configure: @escaping (Version) throws -> Void) {
        self.idleTimeout = idleTimeout
        self.headerTimeout = headerTimeout
        self.configure = configure
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive {
            closeUnlessDecided(in: idleTimeout, context: context)
        }
    }

    func channelActive(context: ChannelHandlerContext) {
        closeUnlessDecided(in: idleTimeout, context: context)
        context.fireChannelActive()
    }

    private func closeUnlessDecided(in time: TimeAmount, context: ChannelHandlerContext) {
        timer?.cancel()
        let channel = context.channel
        timer = context.eventLoop.scheduleTask(in: time) { channel.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if var held {
            held.writeBuffer(&bytes)
            bytes = held
        }
        guard let version = Self.version(of: bytes) else {
            if held == nil {
                closeUnlessDecided(in: headerTimeout, context: context)
            }
            held = bytes
            return
        }
        timer?.cancel()
        held = nil
        do {
            try configure(version)
        } catch {
            context.fireErrorCaught(error)
            context.close(promise: nil)
            return
        }
        context.fireChannelRead(wrapInboundOut(bytes))
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        context.fireChannelInactive()
    }

    /// `nil` while `bytes` are a proper prefix of the preface.
    static func version(of bytes: ByteBuffer) -> Version? {
        let count = min(bytes.readableBytes, preface.count)
        guard bytes.readableBytesView.prefix(count).elementsEqual(preface.prefix(count)) else { return .http1 }
        return count == preface.count ? .http2 : nil
    }
}
