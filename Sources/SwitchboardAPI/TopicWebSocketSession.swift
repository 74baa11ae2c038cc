import Foundation
import NIOCore
import NIOWebSocket
import SwitchboardBroker
import SwitchboardStore

/// One `GET /v1/ws` connection: many topic subscriptions over one socket (multiplexing), publishes,
/// pings and clean closes. Each subscription is a task reading the broker and writing frames; a frame
/// batch is flushed and waited for before the next is read, so a slow client slows only its own
/// subscriptions (which then catch up from the store) and never grows the server's memory.
final class TopicWebSocketSession: JSONWebSocketSession {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let broker: Broker
    private let maxSubscriptions: Int
    /// Whose token opened the socket; `nil` with authentication off.
    private let caller: Caller
    private var subscriptions: [String: Task<Void, Never>] = [:]
    private var publishes: [ObjectIdentifier: Task<Void, Never>] = [:]
    var closing = false
    private var expiry: Scheduled<Void>?

    init(broker: Broker, maxSubscriptions: Int, caller: Caller) {
        self.broker = broker
        self.maxSubscriptions = maxSubscriptions
        self.caller = caller
    }

    /// Closes the socket when its token expires (1008, after an error frame saying so).
    func handlerAdded(context: ChannelHandlerContext) {
        guard let principal = caller.principal else { return }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let delay = TimeAmount.milliseconds(Int64(principal.expiresAt.timeIntervalSinceNow * 1000))
        expiry = context.eventLoop.scheduleTask(in: delay) {
            let (session, context) = loopBound.value
            session.send(
                .error(code: "token_expired", message: "The token expired; reconnect with a new one"),
                context: context
            )
            session.close(context: context, code: .policyViolation)
        }
    }

    /// Refuses, with an error frame, what the socket's token does not allow.
    private func permits(
        _ action: Principal.Action,
        _ message: WebSocketProtocol.ClientMessage,
        context: ChannelHandlerContext
    )
        -> Bool
    {
        guard !caller.may(action) else { return true }
        send(
            .error(code: "forbidden", message: "The token does not allow \(action)", ref: message.ref),
            context: context
        )
        return false
    }

    func receive(text: ByteBuffer, context: ChannelHandlerContext) {
        handle(text: String(buffer: text), context: context)
    }

    func receiveBinary(context: ChannelHandlerContext) {
        send(.error(code: "binary_not_supported", message: "Send JSON text frames"), context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        expiry?.cancel()
        for task in subscriptions.values { task.cancel() }
        for task in publishes.values { task.cancel() }
        subscriptions.removeAll()
        publishes.removeAll()
        context.fireChannelInactive()
    }

    private func handle(text: String, context: ChannelHandlerContext) {
        guard let message = try? JSONDecoder().decode(WebSocketProtocol.ClientMessage.self, from: Data(text.utf8))
        else {
            send(.error(code: "invalid_json", message: #"Expected a JSON object with an "op""#), context: context)
            return
        }
        switch message.op {
        case "subscribe": subscribe(message, context: context)
        case "unsubscribe": unsubscribe(message, context: context)
        case "publish": publish(message, context: context)
        case "ping": send(WebSocketProtocol.pong, context: context)
        default:
            send(.error(code: "unknown_op", message: "Unknown op '\(message.op)'", ref: message.ref), context: context)
        }
    }

    private func subscribe(_ message: WebSocketProtocol.ClientMessage, context: ChannelHandlerContext) {
        guard let topic = validTopic(message, context: context),
            permits(.subscribe(topic: topic), message, context: context)
        else { return }
        guard subscriptions[topic] == nil else {
            send(.error(code: "already_subscribed", message: "Already subscribed to \(topic)"), context: context)
            return
        }
        guard subscriptions.count < maxSubscriptions else {
            send(
                .error(
                    code: "too_many_subscriptions",
                    message: "A connection may hold at most \(maxSubscriptions) subscriptions"
                ),
                context: context
            )
            return
        }
        if let after = message.after, !Broker.offsets.contains(after) {
            send(.error(code: "invalid_parameter", message: "after must be an offset, 0 or more"), context: context)
            return
        }
        let writer = FrameWriter(context: context, handler: self)
        let broker = self.broker
        let after = message.after
        subscriptions[topic] = Task {
            do {
                let subscription = try await broker.subscribe(topic: topic, after: after)
                try await writer.send([WebSocketProtocol.subscribed(topic: topic, position: subscription.position)])
                while let event = try await subscription.next() {
                    switch event {
                    case .messages(let messages):
                        try await writer.send(messages.map(WebSocketProtocol.message))
                    case .trimmed(let earliest):
                        try await writer.send([WebSocketProtocol.trimmed(topic: topic, earliestOffset: earliest)])
                    }
                }
            } catch {
                try? await writer.send([.error(code: "subscription_failed", message: "\(topic): \(error)")])
            }
        }
    }

    private func unsubscribe(_ message: WebSocketProtocol.ClientMessage, context: ChannelHandlerContext) {
        guard let topic = validTopic(message, context: context) else { return }
        guard let task = subscriptions.removeValue(forKey: topic) else {
            send(.error(code: "not_subscribed", message: "Not subscribed to \(topic)"), context: context)
            return
        }
        task.cancel()
        send(WebSocketProtocol.unsubscribed(topic: topic), context: context)
    }

    private func publish(_ message: WebSocketProtocol.ClientMessage, context: ChannelHandlerContext) {
        guard let topic = validTopic(message, context: context),
            permits(.publish(topic: topic), message, context: context)
        else { return }
        guard !TopicName.isReserved(topic) else {
            send(
                .error(code: "topic_reserved", message: "\(topic) is written by the server only", ref: message.ref),
                context: context
            )
            return
        }
        guard let data = message.data else {
            send(
                .error(code: "invalid_message", message: "publish needs a data string", ref: message.ref),
                context: context
            )
            return
        }
        let writer = FrameWriter(context: context, handler: self)
        let broker = self.broker
        let ref = message.ref
        let box = TaskBox()
        let task = Task {
            defer { writer.execute { $0.publishes[ObjectIdentifier(box)] = nil } }
            do {
                let stored = try await broker.publish(
                    NewMessage(topic: topic, contentType: "text/plain", body: Data(data.utf8))
                )
                try await writer.send([WebSocketProtocol.published(stored, ref: ref)])
            } catch {
                try? await writer.send([.error(code: "publish_failed", message: "\(error)", ref: ref)])
            }
        }
        publishes[ObjectIdentifier(box)] = task
    }

    private func validTopic(_ message: WebSocketProtocol.ClientMessage, context: ChannelHandlerContext) -> String? {
        guard let topic = message.topic, TopicName.isValid(topic) else {
            send(
                .error(
                    code: "topic_name_invalid",
                    message: "Topic names are 1 to 200 characters of A-Z a-z 0-9 . _ -",
                    ref: message.ref
                ),
                context: context
            )
            return nil
        }
        return topic
    }

    private func send(_ text: ByteBuffer, context: ChannelHandlerContext) {
        context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .text, data: text)), promise: nil)
    }

    /// Writes text frames from a task onto the session's event loop and waits until they are flushed.
    struct FrameWriter: Sendable {
        private let loopBound: NIOLoopBound<(TopicWebSocketSession, ChannelHandlerContext)>

        init(context: ChannelHandlerContext, handler: TopicWebSocketSession) {
            loopBound = NIOLoopBound((handler, context), eventLoop: context.eventLoop)
        }

        func send(_ texts: [ByteBuffer]) async throws {
            let loopBound = self.loopBound
            try await loopBound.eventLoop.flatSubmit {
                let (handler, context) = loopBound.value
                for text in texts.dropLast() {
                    context.write(
                        handler.wrapOutboundOut(WebSocketFrame(fin: true, opcode: .text, data: text)),
                        promise: nil
                    )
                }
                let last = WebSocketFrame(fin: true, opcode: .text, data: texts.last ?? ByteBuffer())
                return context.writeAndFlush(handler.wrapOutboundOut(last))
            }.get()
        }

        func execute(_ body: @escaping (TopicWebSocketSession) -> Void) {
            let loopBound = self.loopBound
            loopBound.eventLoop.execute { body(loopBound.value.0) }
        }
    }
}

extension ByteBuffer {
    fileprivate static func error(code: String, message: String, ref: String? = nil) -> ByteBuffer {
        WebSocketProtocol.error(code: code, message: message, ref: ref)
    }
}

/// An identity for a task that is created after its own cleanup closure.
private final class TaskBox: Sendable {}
