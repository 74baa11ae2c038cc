import Foundation
import GRPCCore
import SwitchboardAPI
import SwitchboardBroker
import SwitchboardEngine
import SwitchboardProtos
import SwitchboardStore
import Synchronization

/// `switchboard.v1.Topics`: publishes and subscriptions through the broker's one delivery core, with the
/// HTTP API's naming rules, reserved topics and token claims.
struct TopicsService: Switchboard_V1_Topics.ServiceProtocol {
    let broker: Broker
    let authorizer: CallAuthorizer
    /// Largest message data, as `--max-message-bytes` for HTTP publishes.
    let maxMessageBytes: Int
    let idempotency: IdempotentCalls

    func publish(
        request: ServerRequest<Switchboard_V1_PublishRequest>,
        context: ServerContext
    ) async throws -> ServerResponse<Switchboard_V1_Message> {
        let caller = try await authorizer.caller(of: request.metadata)
        var message = try newMessage(request.message, caller: caller)
        return try await idempotency.run(
            request,
            context: context,
            caller: caller,
            answer: Switchboard_V1_Message.init
        ) { receipt in
            message.receipt = receipt
            return try await broker.publish(message)
        }
    }

    func subscribe(
        request: ServerRequest<Switchboard_V1_SubscribeRequest>,
        context: ServerContext
    ) async throws -> StreamingServerResponse<Switchboard_V1_SubscribeEvent> {
        let caller = try await authorizer.caller(of: request.metadata)
        let topic = try readableTopic(request.message.topic, caller: caller)
        let after = try Self.after(request.message)
        let subscription = try await rpc { try await broker.subscribe(topic: topic, after: after) }
        let box = SubscriptionBox(subscription)
        let lifetime = CallLifetime(metadata: request.metadata)
        return StreamingServerResponse { writer in
            // Ends with the call, or when the broker closes (graceful shutdown).
            try await lifetime.run {
                while let event = try await rpc({ try await box.subscription.next() }) {
                    try await writer.write(contentsOf: Switchboard_V1_SubscribeEvent.events(event, topic: topic))
                }
            }
            return [:]
        }
    }

    func publishStream(
        request: StreamingServerRequest<Switchboard_V1_PublishRequest>,
        context: ServerContext
    ) async throws -> ServerResponse<Switchboard_V1_PublishStreamReply> {
        let caller = try await authorizer.caller(of: request.metadata)
        // Publishes are handed to the committer as they arrive (in order, group-committed with their
        // neighbours); the answer waits until every one of them is durable.
        let acknowledgements = Acknowledgements()
        do {
            for try await part in request.messages {
                let message = try newMessage(part, caller: caller)
                acknowledgements.expect()
                broker.publish(message) { acknowledgements.record($0) }
            }
        } catch {
            acknowledgements.fail(RPCError(error))
        }
        let (count, last) = try await acknowledgements.all()
        return ServerResponse(
            message: .with {
                $0.count = Int64(count)
                $0.lastOffset = last
            }
        )
    }

    func session(
        request: StreamingServerRequest<Switchboard_V1_SessionRequest>,
        context: ServerContext
    ) async throws -> StreamingServerResponse<Switchboard_V1_SessionEvent> {
        let caller = try await authorizer.caller(of: request.metadata)
        let lifetime = CallLifetime(metadata: request.metadata)
        return StreamingServerResponse { writer in
            try await lifetime.run {
                try await TopicSession(broker: broker, service: self, caller: caller)
                    .run(requests: request.messages, writer: writer)
            }
            return [:]
        }
    }

    /// A publish, once its topic is valid, not the server's, and allowed to the caller.
    func newMessage(_ request: Switchboard_V1_PublishRequest, caller: Caller) throws -> NewMessage {
        let topic: String
        do {
            topic = try TopicsAPI.topicName(request.topic)
            try TopicsAPI.checkPublishable(topic)
            guard request.data.count <= maxMessageBytes else { throw HTTPError.bodyTooLarge(limit: maxMessageBytes) }
        } catch {
            throw RPCError(error)
        }
        try authorizer.authorize(.publish(topic: topic), for: caller)
        return NewMessage(
            topic: topic,
            contentType: request.contentType.isEmpty ? nil : request.contentType,
            body: request.data
        )
    }

    /// Where a subscription starts: after the offset asked for, or `nil` for only new messages.
    static func after(_ request: Switchboard_V1_SubscribeRequest) throws -> Int64? {
        guard request.hasAfter else { return nil }
        guard Broker.offsets.contains(request.after) else {
            throw RPCError(
                HTTPError.badRequest(code: "invalid_parameter", message: "after must be an offset, 0 or more")
            )
        }
        return request.after
    }

    /// A topic name the caller may subscribe to.
    func readableTopic(_ name: String, caller: Caller) throws -> String {
        let topic: String
        do {
            topic = try TopicsAPI.topicName(name)
        } catch {
            throw RPCError(error)
        }
        try authorizer.authorize(.subscribe(topic: topic), for: caller)
        return topic
    }
}

/// Counts a stream's publishes and their commits, and wakes the stream's answer once every publish it
/// handed on has been answered by the committer.
private final class Acknowledgements: Sendable {
    private typealias Waiter = CheckedContinuation<(Int, Int64), any Error>

    private struct State {
        var expected = 0
        var answered = 0
        var committed = 0
        var lastOffset: Int64 = 0
        var failure: RPCError?
        var waiter: Waiter?

        /// The waiter to resume, once everything expected is answered.
        mutating func takeWaiterIfDone() -> Waiter? {
            guard answered == expected, let waiter else { return nil }
            self.waiter = nil
            return waiter
        }
    }

    private let state = Mutex(State())

    func expect() {
        state.withLock { $0.expected += 1 }
    }

    func record(_ result: Result<StoredMessage, any Error>) {
        let (waiter, state) = state.withLock { state in
            state.answered += 1
            switch result {
            case .success(let stored):
                state.committed += 1
                state.lastOffset = max(state.lastOffset, stored.offset)
            case .failure(let error):
                state.failure = state.failure ?? RPCError(error)
            }
            return (state.takeWaiterIfDone(), state)
        }
        waiter.map { Self.resume($0, with: state) }
    }

    /// The request stream failed (or a message in it was refused): the answer is that error.
    func fail(_ error: RPCError) {
        state.withLock { $0.failure = $0.failure ?? error }
    }

    /// The count and last offset once every expected publish is durable; the first failure otherwise.
    func all() async throws -> (Int, Int64) {
        try await withCheckedThrowingContinuation { continuation in
            let (waiter, state) = state.withLock { state in
                state.waiter = continuation
                return (state.takeWaiterIfDone(), state)
            }
            waiter.map { Self.resume($0, with: state) }
        }
    }

    private static func resume(_ waiter: Waiter, with state: State) {
        if let failure = state.failure {
            waiter.resume(throwing: failure)
        } else {
            waiter.resume(returning: (state.committed, state.lastOffset))
        }
    }
}

extension Switchboard_V1_Message {
    init(_ stored: StoredMessage) {
        self.init()
        topic = stored.topic
        offset = stored.offset
        id = stored.id
        timestamp = stored.timestamp
        contentType = stored.contentType ?? ""
        data = stored.body
    }
}

extension Switchboard_V1_SubscribeEvent {
    static func events(_ event: Subscription.Event, topic: String) -> [Self] {
        switch event {
        case .messages(let messages):
            messages.map { message in .with { $0.message = .init(message) } }
        case .trimmed(let earliest):
            [
                .with {
                    $0.trimmed = .with {
                        $0.topic = topic
                        $0.earliestOffset = earliest
                    }
                }
            ]
        }
    }
}
