import NIOCore
import NIOHTTP1

/// Closes keep-alive connections that sit idle and answers 408 to heads that arrive too slowly
/// (slowloris); no timer runs while a request is being handled.
final class ConnectionTimeoutHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let limits: HTTPLimits
    private let activity: ConnectionActivity
    private let refusals: Refusals
    private var state = StateMachine()
    /// When the current timer expires; `nil` while none runs.
    private var deadline: NIODeadline?
    /// The one pending check of `deadline`.
    private var scheduledCheck: (at: NIODeadline, task: Scheduled<Void>)?

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
        // Added after the first bytes arrived (behind the prior-knowledge check): a head has begun.
        if activity.hasRequestBytes {
            arm(state.requestBytesArrived(), context: context)
        } else if context.channel.isActive {
            arm(state.timer, context: context)
        }
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(state.timer, context: context)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        scheduledCheck?.task.cancel()
        activity.onRequestBytes = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        scheduledCheck?.task.cancel()
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

    /// Sets the deadline of `timer`. Requests come far more often than timers fire, so a request only
    /// moves the deadline; one scheduled check at a time fires, and re-arms itself if the deadline moved.
    private func arm(_ timer: StateMachine.Timer, context: ChannelHandlerContext) {
        switch timer {
        case .none: deadline = nil
        case .idle: deadline = .now() + limits.idleTimeout
        case .headerRead: deadline = .now() + limits.headerReadTimeout
        }
        if let deadline {
            scheduleCheck(at: deadline, context: context)
        }
    }

    private func scheduleCheck(at deadline: NIODeadline, context: ChannelHandlerContext) {
        if let check = scheduledCheck, check.at <= deadline {
            return  // The pending check comes first and will look at the new deadline.
        }
        scheduledCheck?.task.cancel()
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let task = context.eventLoop.scheduleTask(deadline: deadline) {
            let (handler, context) = loopBound.value
            handler.check(context: context)
        }
        scheduledCheck = (deadline, task)
    }

    private func check(context: ChannelHandlerContext) {
        scheduledCheck = nil
        guard let deadline else { return }
        if deadline <= .now() {
            expire(state.timer, context: context)
        } else {
            scheduleCheck(at: deadline, context: context)
        }
    }

    private func expire(_ timer: StateMachine.Timer, context: ChannelHandlerContext) {
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
