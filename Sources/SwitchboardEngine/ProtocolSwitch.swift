import NIOCore
import NIOHTTP1

/// Hands a connection whose request asks to switch protocols (`Connection: Upgrade`, `Upgrade: NAME`)
/// to something other than the engine's own WebSocket endpoints: the edge relays such connections to an
/// upstream. `accept` runs at the request's head; its answer gives the `101 Switching Protocols` headers
/// and what takes the connection once the 101 has gone out, with the HTTP handlers removed. A failed
/// future declines: the request is then served as plain HTTP.
public struct ProtocolSwitch: Sendable {
    /// What an accepted switch answers.
    public struct Accepted: Sendable {
        public var headers: HTTPHeaders
        /// Installs what serves the connection from now on; bytes that followed the request come after.
        public var start: @Sendable (any Channel) -> EventLoopFuture<Void>

        public init(headers: HTTPHeaders, start: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>) {
            self.headers = headers
            self.start = start
        }
    }

    public var protocolName: String
    public var accept: @Sendable (HTTPRequestHead, any Channel) -> EventLoopFuture<Accepted>

    public init(
        protocolName: String,
        accept: @escaping @Sendable (HTTPRequestHead, any Channel) -> EventLoopFuture<Accepted>
    ) {
        self.protocolName = protocolName
        self.accept = accept
    }

    /// NIO's view of this switch, for one connection.
    func makeUpgrader() -> any HTTPServerProtocolUpgrader {
        Upgrader(protocolSwitch: self)
    }

    private final class Upgrader: HTTPServerProtocolUpgrader, @unchecked Sendable {
        let protocolSwitch: ProtocolSwitch
        /// Set by `buildUpgradeResponse` and read by `upgrade`, both on the connection's event loop.
        private var accepted: Accepted?

        init(protocolSwitch: ProtocolSwitch) {
            self.protocolSwitch = protocolSwitch
        }

        var supportedProtocol: String { protocolSwitch.protocolName }
        var requiredUpgradeHeaders: [String] { [] }

        func buildUpgradeResponse(
            channel: any Channel,
            upgradeRequest: HTTPRequestHead,
            initialResponseHeaders: HTTPHeaders
        ) -> EventLoopFuture<HTTPHeaders> {
            protocolSwitch.accept(upgradeRequest, channel).hop(to: channel.eventLoop).map { accepted in
                self.accepted = accepted
                return accepted.headers
            }
        }

        func upgrade(context: ChannelHandlerContext, upgradeRequest: HTTPRequestHead) -> EventLoopFuture<Void> {
            guard let accepted else {
                return context.eventLoop.makeFailedFuture(ChannelError.inappropriateOperationForState)
            }
            return accepted.start(context.channel)
        }
    }
}
