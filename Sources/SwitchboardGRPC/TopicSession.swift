import GRPCCore
import SwitchboardAPI
import SwitchboardBroker
import SwitchboardProtos

/// One `Topics.Session` call, as `/v1/ws` works: subscribe and unsubscribe by topic, publish with a
/// `ref` that the answer echoes. Each subscription has a task that writes its messages in order (the
/// call's writer takes writes from several tasks and holds each back while the client is slow); errors
/// about one request are events, not the end of the call.
struct TopicSession {
    let broker: Broker
    let service: TopicsService
    let caller: Caller

    func run(
        requests: RPCAsyncSequence<Switchboard_V1_SessionRequest, any Error>,
        writer: RPCWriter<Switchboard_V1_SessionEvent>
    ) async throws {
        var subscriptions: [String: Task<Void, Never>] = [:]
        defer {
            for task in subscriptions.values { task.cancel() }
        }
        for try await request in requests {
            switch request.op {
            case .subscribe(let subscribe):
                do {
                    let topic = try service.readableTopic(subscribe.topic, caller: caller)
                    guard subscriptions[topic] == nil else {
                        throw RPCError(code: .alreadyExists, message: "Already subscribed to \(topic)")
                    }
                    let after = try TopicsService.after(subscribe)
                    let subscription = try await rpc { try await broker.subscribe(topic: topic, after: after) }
                    try await writer.write(
                        .with {
                            $0.subscribed = .with {
                                $0.topic = topic
                                $0.position = subscription.position
                            }
                        }
                    )
                    subscriptions[topic] = Self.deliver(SubscriptionBox(subscription), to: writer)
                } catch {
                    try await writer.write(.error(error, ref: ""))
                }
            case .unsubscribe(let unsubscribe):
                subscriptions.removeValue(forKey: unsubscribe.topic)?.cancel()
                try await writer.write(.with { $0.unsubscribed = unsubscribe })
            case .publish(let publish):
                do {
                    let message = try service.newMessage(publish.message, caller: caller)
                    let stored = try await rpc { try await broker.publish(message) }
                    try await writer.write(
                        .with {
                            $0.published = .with {
                                $0.ref = publish.ref
                                $0.message = .init(stored)
                            }
                        }
                    )
                } catch {
                    try await writer.write(.error(error, ref: publish.ref))
                }
            case nil:
                let error = RPCError(code: .invalidArgument, message: "A session request needs an op")
                try await writer.write(.error(error, ref: ""))
            }
        }
    }

    /// Writes a subscription's messages until it is cancelled or the call ends.
    private static func deliver(
        _ box: SubscriptionBox,
        to writer: RPCWriter<Switchboard_V1_SessionEvent>
    ) -> Task<Void, Never> {
        Task {
            let topic = box.subscription.topic
            while let event = try? await box.subscription.next() {
                let events = Switchboard_V1_SubscribeEvent.events(event, topic: topic).map { event in
                    Switchboard_V1_SessionEvent.with {
                        switch event.event {
                        case .message(let message): $0.message = message
                        case .trimmed(let trimmed): $0.trimmed = trimmed
                        case nil: break
                        }
                    }
                }
                guard (try? await writer.write(contentsOf: events)) != nil else { return }
            }
        }
    }
}

extension Switchboard_V1_SessionEvent {
    /// An error answering one request of the session, with the HTTP API's error code.
    static func error(_ error: any Error, ref: String) -> Self {
        let status = RPCError(error)
        return .with {
            $0.error = .with {
                $0.code =
                    status.metadata[stringValues: "switchboard-error-code"].first(where: { _ in true })
                    ?? "\(status.code)"
                $0.message = status.message
                $0.ref = ref
            }
        }
    }
}
