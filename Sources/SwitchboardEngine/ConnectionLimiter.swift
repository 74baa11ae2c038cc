import NIOConcurrencyHelpers
import NIOCore

/// Caps open connections across every listener of a server. At the cap a listener stops asking the
/// kernel for new connections (they wait in the accept queue) instead of accepting and failing them;
/// it asks again as soon as one closes.
final class ConnectionLimiter: Sendable {
    private struct State {
        var open = 0
        /// Listeners holding back a read because the cap was reached.
        var stalled: [any Channel] = []
    }

    let maxConnections: Int
    private let state = NIOLockedValueBox(State())

    init(maxConnections: Int) {
        self.maxConnections = maxConnections
    }

    var openConnections: Int { state.withLockedValue { $0.open } }

    /// The handler that gates accepts on one listening channel.
    func makeHandler() -> some ChannelDuplexHandler {
        AcceptGate(limiter: self)
    }

    fileprivate func opened(_ child: any Channel) {
        state.withLockedValue { $0.open += 1 }
        child.closeFuture.whenComplete { _ in self.closed() }
    }

    private func closed() {
        let stalled = state.withLockedValue { state -> [any Channel] in
            state.open -= 1
            guard state.open < maxConnections else { return [] }
            defer { state.stalled.removeAll() }
            return state.stalled
        }
        for listener in stalled {
            listener.read()
        }
    }

    /// Whether a listener may accept now; if not it is remembered and woken on the next close.
    fileprivate func mayAccept(_ listener: any Channel) -> Bool {
        state.withLockedValue { state in
            if state.open < maxConnections { return true }
            state.stalled.append(listener)
            return false
        }
    }
}

/// Sits on a listening channel: counts accepted children and withholds `read` at the cap.
private final class AcceptGate: ChannelDuplexHandler {
    typealias InboundIn = any Channel
    typealias InboundOut = any Channel
    typealias OutboundIn = Never
    typealias OutboundOut = Never

    private let limiter: ConnectionLimiter

    init(limiter: ConnectionLimiter) {
        self.limiter = limiter
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        limiter.opened(unwrapInboundIn(data))
        context.fireChannelRead(data)
    }

    func read(context: ChannelHandlerContext) {
        if limiter.mayAccept(context.channel) {
            context.read()
        }
    }
}
