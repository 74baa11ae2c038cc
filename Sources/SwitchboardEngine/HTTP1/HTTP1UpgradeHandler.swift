import NIOCore
import NIOHTTP1

/// Switches an HTTP/1.1 connection to another protocol (RFC 9110 §7.8) when a request asks for one that
/// an upgrader takes (a WebSocket endpoint, or the edge's relay): the upgrader builds the
/// `101 Switching Protocols` headers, the HTTP handlers leave the pipeline, the upgrader installs its own,
/// and the bytes that followed the request reach them. A declined upgrade is served as a plain request.
///
/// Any request of a connection may ask; the codec parses nothing after it until it is answered.
final class HTTP1UpgradeHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        /// Parts go on to the request handlers.
        case passing
        /// An upgrader is deciding on `head`; the request's parts wait here.
        case deciding(head: HTTPRequestHead, parts: [HTTPServerRequestPart], accepted: (() -> Void)?)
        /// The upgrade is under way: whatever arrives waits for the new protocol's handlers.
        case switching(buffered: [NIOAny])
    }

    private let makeUpgraders: [() -> any HTTPServerProtocolUpgrader]
    /// The handlers that serve HTTP on this connection, in the order they leave it when it switches.
    private let httpHandlers: [any RemovableChannelHandler]
    private var state = State.passing

    init(upgraders: [() -> any HTTPServerProtocolUpgrader], httpHandlers: [any RemovableChannelHandler]) {
        makeUpgraders = upgraders
        self.httpHandlers = httpHandlers
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch state {
        case .switching(var buffered):
            buffered.append(data)
            state = .switching(buffered: buffered)
        case .deciding(let head, var parts, let accepted):
            let part = unwrapInboundIn(data)
            parts.append(part)
            state = .deciding(head: head, parts: parts, accepted: accepted)
            if case .end = part, let accepted {
                accepted()
            }
        case .passing:
            guard case .head(let head) = unwrapInboundIn(data), let (upgrader, name) = upgrader(for: head) else {
                context.fireChannelRead(data)
                return
            }
            state = .deciding(head: head, parts: [], accepted: nil)
            decide(upgrader, protocolName: name, head: head, context: context)
        }
    }

    /// The first upgrader that takes one of the protocols `head` asks for, with that protocol's name.
    private func upgrader(for head: HTTPRequestHead) -> (any HTTPServerProtocolUpgrader, String)? {
        guard !makeUpgraders.isEmpty, head.headers.contains(name: "upgrade") else { return nil }
        let connection = Set(head.headers[canonicalForm: "connection"].map { $0.lowercased() })
        guard connection.contains("upgrade") else { return nil }
        let names = Set(head.headers.map { $0.name.lowercased() })
        let upgraders = makeUpgraders.map { $0() }
        for name in head.headers[canonicalForm: "upgrade"].map({ $0.lowercased() }) {
            for upgrader in upgraders where upgrader.supportedProtocol.lowercased() == name {
                let required = Set(upgrader.requiredUpgradeHeaders.map { $0.lowercased() })
                if required.isSubset(of: names), required.isSubset(of: connection) {
                    return (upgrader, name)
                }
            }
        }
        return nil
    }

    private func decide(
        _ upgrader: any HTTPServerProtocolUpgrader,
        protocolName: String,
        head: HTTPRequestHead,
        context: ChannelHandlerContext
    ) {
        upgrader.buildUpgradeResponse(
            channel: context.channel,
            upgradeRequest: head,
            initialResponseHeaders: ["connection": "upgrade", "upgrade": protocolName]
        )
        .hop(to: context.eventLoop)
        .assumeIsolated()
        .whenComplete { result in
            guard case .deciding(let head, let parts, _) = self.state else { return }
            switch result {
            case .success(let headers):
                let accepted = { self.switchProtocols(upgrader, head: head, headers: headers, context: context) }
                self.state = .deciding(head: head, parts: parts, accepted: accepted)
                if parts.contains(where: { if case .end = $0 { true } else { false } }) {
                    accepted()
                }
            case .failure:
                self.decline(head: head, parts: parts, context: context)
            }
        }
    }

    /// Serves the request as plain HTTP.
    private func decline(head: HTTPRequestHead, parts: [HTTPServerRequestPart], context: ChannelHandlerContext) {
        state = .passing
        context.fireChannelRead(wrapInboundOut(.head(head)))
        for part in parts {
            context.fireChannelRead(wrapInboundOut(part))
        }
        context.fireChannelReadComplete()
    }

    private func switchProtocols(
        _ upgrader: any HTTPServerProtocolUpgrader,
        head: HTTPRequestHead,
        headers: HTTPHeaders,
        context: ChannelHandlerContext
    ) {
        state = .switching(buffered: [])
        let response = HTTPResponseHead(version: .http1_1, status: .switchingProtocols, headers: headers)
        context.writeAndFlush(wrapOutboundOut(.head(response)), promise: nil)
        let pipeline = context.pipeline.syncOperations
        for handler in httpHandlers {
            _ = pipeline.removeHandler(handler)
        }
        upgrader.upgrade(context: context, upgradeRequest: head).hop(to: context.eventLoop).assumeIsolated()
            .whenComplete { result in
                switch result {
                case .success:
                    context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
                case .failure(let error):
                    context.fireErrorCaught(error)
                    context.close(promise: nil)
                }
            }
    }

    func removeHandler(context: ChannelHandlerContext, removalToken: ChannelHandlerContext.RemovalToken) {
        // The new protocol's handlers are in place: what arrived meanwhile goes to them.
        if case .switching(let buffered) = state, !buffered.isEmpty {
            state = .passing
            for data in buffered {
                context.fireChannelRead(data)
            }
            context.fireChannelReadComplete()
        }
        context.leavePipeline(removalToken: removalToken)
    }
}
