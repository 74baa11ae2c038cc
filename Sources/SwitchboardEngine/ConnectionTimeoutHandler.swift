import NIOCore
import NIOHTTP1

/// Closes keep-alive connections that sit idle and answers 408 to heads that arrive too slowly
/// (slowloris); no timer runs while a request is being handled.
final class ConnectionTimeoutHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let limits: HTTPLimits
    private let activity: ConnectionActivity
    private let refusals: Refusals
    private var state = StateMachine()
    private var scheduled: Scheduled<Void>?

    init(limits: HTTPLimits, activity: ConnectionActivity, refusals: Refusals) {
        self.limits = limits
        self.activity = activity
        self.refusals = refusals
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        activity.onRequestBytes = {
            let (handler, context) = loopBound.value
            handler.arm(handler.state.requestBytesArrived(), context: context)
        }
        if context.channel.isActive {
            arm(state.timer, context: context)
        }
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(state.timer, context: context)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        scheduled?.cancel()
        activity.onRequestBytes = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        scheduled?.cancel()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head = unwrapInboundIn(data) {
            arm(state.headReceived(), context: context)
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            arm(state.responseEnded(), context: context)
        }
        context.write(data, promise: promise)
    }

    private func arm(_ timer: StateMachine.Timer, context: ChannelHandlerContext) {
        scheduled?.cancel()
        scheduled = nil
        let delay: TimeAmount
        switch timer {
        case .none: return
        case .idle: delay = limits.idleTimeout
        case .headerRead: delay = limits.headerReadTimeout
        }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        scheduled = context.eventLoop.scheduleTask(in: delay) {
            let (handler, context) = loopBound.value
            handler.expire(timer, context: context)
        }
    }

    private func expire(_ timer: StateMachine.Timer, context: ChannelHandlerContext) {
        guard timer == state.timer else { return }
        if timer == .headerRead {
            let error = HTTPError(
                .requestTimeout,
                code: "header_timeout",
                message: "The request head did not arrive within the header read timeout"
            )
            refusals.refuse(error, context: context)
        } else {
            context.close(promise: nil)
        }
    }
}
