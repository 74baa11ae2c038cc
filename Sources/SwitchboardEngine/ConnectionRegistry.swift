import NIOConcurrencyHelpers
import NIOCore

/// The open connections of every listener of a server. It caps their number: at the cap a listener
/// stops asking the kernel for new connections (they wait in the accept queue) instead of accepting and
/// failing them, and asks again as soon as one closes. It also closes them all when draining runs out.
public final class ConnectionRegistry: Sendable {
    private struct State {
        var open: [ObjectIdentifier: any Channel] = [:]
        /// Listeners holding back a read because the cap was reached.
        var stalled: [any Channel] = []
    }

    let maxConnections: Int
    private let state = NIOLockedValueBox(State())

    public init(maxConnections: Int) {
        self.maxConnections = maxConnections
    }

    public var openConnections: Int { state.withLockedValue { $0.open.count } }

    /// Closes every open connection.
    func closeAll() {
        for channel in state.withLockedValue({ Array($0.open.values) }) {
            channel.close(promise: nil)
        }
    }

    /// The handler that gates accepts on one listening channel.
    func makeHandler() -> some ChannelDuplexHandler {
        AcceptGate(registry: self)
    }

    fileprivate func opened(_ child: any Channel) {
        state.withLockedValue { $0.open[ObjectIdentifier(child)] = child }
        child.closeFuture.whenComplete { _ in self.closed(child) }
    }

    private func closed(_ child: any Channel) {
        let stalled = state.withLockedValue { state -> [any Channel] in
            state.open[ObjectIdentifier(child)] = nil
            guard state.open.count < maxConnections else { return [] }
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
            if state.open.count < maxConnections { return true }
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

    private let registry: ConnectionRegistry

    init(registry: ConnectionRegistry) {
        self.registry = registry
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        registry.opened(unwrapInboundIn(data))
        context.fireChannelRead(data)
    }

    func read(context: ChannelHandlerContext) {
        if registry.mayAccept(context.channel) {
            context.read()
        }
    }
}
