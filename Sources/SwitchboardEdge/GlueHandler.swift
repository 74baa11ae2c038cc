import Logging
import NIOCore
import SwitchboardEngine

/// Joins two channels so that the bytes read on one are written to the other. Backpressure both ways:
/// a side is read only while its partner is writable, so a slow reader slows its writer instead of
/// filling memory. A half-close (EOF) is passed on as a half-close; the pair closes when both
/// directions have ended or either side fails. One half may join its channel before the other exists
/// (a client accepted while its upstream is still connecting): it does not read meanwhile, and what the
/// kernel hands it anyway (data with an early EOF) waits for the partner.
final class GlueHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Bytes this half has read from its channel (and handed to its partner).
    private(set) var bytesRead = 0
    private var partner: GlueHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false
    private var readEnded = false
    private var partnerEnded = false
    /// Writes and a half-close that arrived for this half before it joined its channel.
    private var waitingWrites: [NIOAny] = []
    private var halfCloseWaiting = false

    private init() {}

    /// Two handlers, one for each channel, glued to each other.
    static func matchedPair() -> (GlueHandler, GlueHandler) {
        let first = GlueHandler()
        let second = GlueHandler()
        first.partner = second
        second.partner = first
        return (first, second)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        guard partner?.context != nil else { return }
        for data in waitingWrites {
            context.write(data, promise: nil)
        }
        waitingWrites.removeAll()
        context.flush()
        if halfCloseWaiting {
            partnerHalfClose()
        }
        // The partner held back its reads until this half could take what it reads.
        partner?.partnerBecameWritable()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        bytesRead += unwrapInboundIn(data).readableBytes
        partner?.partnerWrite(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        partner?.partnerFlush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        partner?.partnerCloseFully()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            readEnded = true
            partner?.partnerHalfClose()
            if partnerEnded { context.close(promise: nil) }
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            partner?.partnerBecameWritable()
        }
    }

    func read(context: ChannelHandlerContext) {
        if partner?.partnerIsWritable ?? false {
            context.read()
        } else {
            pendingRead = true
        }
    }

    private var partnerIsWritable: Bool { context?.channel.isWritable ?? false }

    private func partnerWrite(_ data: NIOAny) {
        guard let context else {
            waitingWrites.append(data)
            return
        }
        context.write(data, promise: nil)
    }

    private func partnerFlush() {
        context?.flush()
    }

    private func partnerHalfClose() {
        partnerEnded = true
        guard let context else {
            halfCloseWaiting = true
            return
        }
        if readEnded {
            context.close(promise: nil)
        } else {
            context.close(mode: .output, promise: nil)
        }
    }

    private func partnerCloseFully() {
        context?.close(promise: nil)
    }

    private func partnerBecameWritable() {
        if pendingRead, let context {
            pendingRead = false
            context.read()
        }
    }
}

extension GlueHandler {
    /// Writes one access-log line when `client` closes: who, to where, bytes each way and how long.
    static func logWhenClosed(
        _ client: any Channel,
        halves: (client: GlueHandler, origin: GlueHandler),
        listener: String,
        target: String,
        to accessLog: AccessLog?
    ) {
        guard let accessLog else { return }
        let started = NIODeadline.now()
        let peer = client.remoteAddress?.description ?? "?"
        let halves = NIOLoopBound(halves, eventLoop: client.eventLoop)
        client.closeFuture.whenComplete { _ in
            let (clientHalf, originHalf) = halves.value
            accessLog.write(
                "\(listener) \(target)",
                fields: [
                    "bytes_in": String(clientHalf.bytesRead),
                    "bytes_out": String(originHalf.bytesRead),
                    "duration_ms": (NIODeadline.now() - started).millisecondsText,
                    "peer": peer,
                ],
                source: "SwitchboardEdge"
            )
        }
    }
}
