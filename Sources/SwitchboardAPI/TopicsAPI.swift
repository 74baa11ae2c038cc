import Foundation
import NIOCore
import NIOHTTP1
import SwitchboardBroker
import SwitchboardEngine
import SwitchboardStore

/// The topic endpoints: publish, short and long poll, Server-Sent Events and consumer groups, each a
/// thin adapter over the broker.
public struct TopicsAPI: Sendable {
    public struct Configuration: Sendable {
        /// Largest message body; over it 413.
        public var maxMessageBytes = 1 << 20
        /// Most messages one poll returns.
        public var maxPollLimit: Int64 = 1000
        /// Longest `wait` a long poll may ask for, in seconds.
        public var maxWaitSeconds: Double = 60
        /// Interval between SSE heartbeat comments.
        public var sseHeartbeat: Duration = .seconds(15)
        /// The reconnection delay SSE clients are told (`retry:`).
        public var sseRetryMilliseconds = 2000
        /// Subscriptions one WebSocket connection may hold.
        public var maxSubscriptionsPerConnection = 100

        public init() {}
    }

    let broker: Broker
    let configuration: Configuration

    public init(broker: Broker, configuration: Configuration = Configuration()) {
        self.broker = broker
        self.configuration = configuration
    }

    /// `GET /v1/ws`: the topics over WebSocket (see `WebSocketProtocol`). With `authentication`, only a
    /// request with a valid token is upgraded; the rest reach the router, which answers 401.
    public func webSocketEndpoint(authentication: Authentication?) -> WebSocketEndpoint {
        let broker = self.broker
        let limit = configuration.maxSubscriptionsPerConnection
        return WebSocketEndpoint(path: "/v1/ws", maxMessageBytes: configuration.maxMessageBytes + 4096) { head in
            guard let caller = try? await Caller.of(head, authentication: authentication) else { return nil }
            return { channel in
                try channel.pipeline.syncOperations.addHandler(
                    TopicWebSocketSession(broker: broker, maxSubscriptions: limit, caller: caller)
                )
            }
        }
    }

    public func register(in router: inout Router) {
        router.addImmediate(.GET, "/v1/ws") { _ in
            throw HTTPError(
                .upgradeRequired,
                code: "websocket_required",
                message: "GET /v1/ws must be a WebSocket upgrade (Connection: Upgrade, Upgrade: websocket)",
                headers: ["Upgrade": "websocket"]
            )
        }
        router.addFuture(.POST, "/v1/topics/{topic}/messages", maxBodyBytes: configuration.maxMessageBytes) {
            request,
            eventLoop in
            publish(request, on: eventLoop)
        }
        router.add(.GET, "/v1/topics") { _ in try await list() }
        router.add(.GET, "/v1/topics/{topic}/messages") { request in
            try await poll(request)
        }
        router.add(.GET, "/v1/topics/{topic}/events") { request in
            try await events(request)
        }
        router.add(.GET, "/v1/topics/{topic}/groups/{group}/messages") { request in
            try await pollGroup(request)
        }
        router.add(.POST, "/v1/topics/{topic}/groups/{group}/commit", maxBodyBytes: 4096) { request in
            try await commitGroup(request)
        }
    }

    /// Hands the message to the group committer and answers 201 from the event loop once it is durable.
    private func publish(_ request: Request, on eventLoop: any EventLoop) -> EventLoopFuture<Response> {
        let topic: String
        do {
            topic = try Self.topic(of: request)
            try Self.checkPublishable(topic)
            try Caller.authorize(.publish(topic: topic))
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
        let promise = eventLoop.makePromise(of: StoredMessage.self)
        broker.publish(
            NewMessage(
                topic: topic,
                contentType: request.head.headers.first(name: "content-type"),
                body: Data(request.body.readableBytesView),
                receipt: IdempotencyScope.current?.receipt(Self.published)
            )
        ) { promise.completeWith($0) }
        return promise.futureResult.map(Self.published)
    }

    /// `GET /v1/topics`: the topics the caller may subscribe to, with their bounds and retention.
    private func list() async throws -> Response {
        let caller = try Caller.required()
        let topics = try await broker.topics(limit: 1000).filter { caller.may(.subscribe(topic: $0.summary.name)) }
        var body = JSONObjectWriter(capacity: 96 * topics.count + 16)
        body.raw(
            "topics",
            JSONObjectWriter.array(topics) { item, topic in
                item.string("topic", topic.summary.name)
                item.number("earliestOffset", topic.summary.earliestOffset)
                item.number("latestOffset", topic.summary.latestOffset)
                item.number("retentionMessages", topic.retention.maxMessages)
                item.number("retentionSeconds", topic.retention.maxAgeSeconds)
            }
        )
        return .json(ByteBuffer(bytes: body.finish()))
    }

    /// 201 with where the message landed.
    private static func published(_ stored: StoredMessage) -> Response {
        // Every field is a validated topic name, a UUID or a number: no escaping needed.
        var response = Response.json(
            ByteBuffer(
                string:
                    #"{"topic":"\#(stored.topic)","offset":\#(stored.offset),"id":"\#(stored.id)","timestamp":\#(stored.timestamp)}"#
            ),
            status: .created
        )
        response.headers.add(
            name: "Location",
            value: "/v1/topics/\(stored.topic)/messages?after=\(stored.offset - 1)&limit=1"
        )
        return response
    }

    private func poll(_ request: Request) async throws -> Response {
        let topic = try Self.readableTopic(of: request)
        let query = QueryParameters(request)
        let limit = try query.integer("limit", in: 1...configuration.maxPollLimit) ?? 100
        let wait = try query.seconds("wait", max: configuration.maxWaitSeconds) ?? .zero
        let after: Int64
        if let asked = try query.integer("after", in: Broker.offsets) {
            after = asked
        } else {
            after = try await broker.read(topic: topic, after: 0, limit: 0).earliestOffset - 1
        }
        return try await messages(topic: topic, after: after, limit: Int(limit), wait: wait)
    }

    private func pollGroup(_ request: Request) async throws -> Response {
        let topic = try Self.readableTopic(of: request)
        let group = try Self.groupName(of: request)
        let query = QueryParameters(request)
        let limit = try query.integer("limit", in: 1...configuration.maxPollLimit) ?? 100
        let wait = try query.seconds("wait", max: configuration.maxWaitSeconds) ?? .zero
        let committed = try await broker.committedOffset(topic: topic, group: group)
        return try await messages(topic: topic, after: committed, limit: Int(limit), wait: wait)
    }

    private func commitGroup(_ request: Request) async throws -> Response {
        struct Commit: Codable {
            var offset: Int64
        }
        let topic = try Self.readableTopic(of: request)
        let group = try Self.groupName(of: request)
        guard let commit = try? JSONDecoder().decode(Commit.self, from: Data(request.body.readableBytesView)),
            Broker.offsets.contains(commit.offset)
        else {
            throw HTTPError.badRequest(code: "invalid_body", message: #"The body must be {"offset": N} with N >= 0"#)
        }
        try await broker.commit(topic: topic, group: group, offset: commit.offset)
        return .json(ByteBuffer(string: #"{"topic":"\#(topic)","group":"\#(group)","offset":\#(commit.offset)}"#))
    }

    /// A poll's answer, or 410 when `after` points before what retention still holds.
    private func messages(topic: String, after: Int64, limit: Int, wait: Duration) async throws -> Response {
        let slice = try await broker.read(topic: topic, after: after, limit: limit, waitingUpTo: wait)
        if after + 1 < slice.earliestOffset && slice.latestOffset > after {
            var error = HTTPError(
                .gone,
                code: "offset_trimmed",
                message: "Messages after \(after) are no longer retained; the earliest offset still held is "
                    + "\(slice.earliestOffset), so ask with after=\(slice.earliestOffset - 1)"
            )
            error.headers.add(name: "Switchboard-Earliest-Offset", value: String(slice.earliestOffset))
            throw error
        }
        return try Response.json(
            MessagesJSON(
                topic: topic,
                messages: slice.messages.map(MessageJSON.init),
                earliestOffset: slice.earliestOffset,
                latestOffset: slice.latestOffset,
                next: slice.messages.last?.offset ?? after
            )
        ).held(wait > .zero)
    }

    /// Server-Sent Events: `id:` is the offset, resumed from `Last-Event-ID` or `?after=`; a heartbeat
    /// comment keeps idle connections open; the stream never ends on its own.
    private func events(_ request: Request) async throws -> Response {
        try await eventStream(topic: Self.readableTopic(of: request), request: request, defaultAfter: nil)
    }

    /// The SSE stream of `topic` for `request`, from `Last-Event-ID`, `?after=` or else `defaultAfter`
    /// (`nil`: only what is published from now on).
    func eventStream(topic: String, request: Request, defaultAfter: Int64?) async throws -> Response {
        let lastEventID = request.head.headers.first(name: "last-event-id")
        let after: Int64?
        if let lastEventID {
            guard let offset = Int64(lastEventID), Broker.offsets.contains(offset) else {
                throw HTTPError.badRequest(code: "invalid_parameter", message: "Last-Event-ID must be an offset")
            }
            after = offset
        } else {
            after = try QueryParameters(request).integer("after", in: Broker.offsets) ?? defaultAfter
        }
        let subscription = try await broker.subscribe(topic: topic, after: after)
        let stream = SubscriptionBox(subscription)
        let heartbeat = configuration.sseHeartbeat
        let retry = configuration.sseRetryMilliseconds
        let expiry = Caller.current?.principal?.expiresAt
        return Response(
            headers: [
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            ],
            body: .stream { writer in
                try await writer.write("retry: \(retry)\n\n")
                let beat = Task {
                    while !Task.isCancelled {
                        try await Task.sleep(for: heartbeat)
                        try await writer.write(": heartbeat\n\n")
                    }
                }
                defer { beat.cancel() }
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        while let event = try await stream.subscription.next() {
                            try await writer.write(ServerSentEvents.encode(event))
                        }
                    }
                    if let expiry {
                        // The stream ends when its token does, saying why.
                        group.addTask {
                            try await Task.sleep(for: .milliseconds(Int64(expiry.timeIntervalSinceNow * 1000)))
                            try await writer.write(ServerSentEvents.tokenExpired)
                        }
                    }
                    try await group.next()
                    group.cancelAll()
                }
            }
        )
    }

    /// The request's topic, once the caller may subscribe to it.
    static func readableTopic(of request: Request) throws -> String {
        let topic = try topic(of: request)
        try Caller.authorize(.subscribe(topic: topic))
        return topic
    }

    static func topic(of request: Request) throws -> String {
        try topicName(request.parameters["topic"])
    }

    /// A topic name, checked against the one naming rule (any transport's).
    public static func topicName(_ value: String?) throws -> String {
        try name(value, kind: "Topic", code: "topic_name_invalid")
    }

    /// Refuses topics that only the server writes.
    public static func checkPublishable(_ topic: String) throws {
        guard !TopicName.isReserved(topic) else {
            throw HTTPError(
                .forbidden,
                code: "topic_reserved",
                message: "Topics \(TopicName.reservedDescription) are written by the server only"
            )
        }
    }

    private static func groupName(of request: Request) throws -> String {
        try name(request.parameters["group"], kind: "Group", code: "group_name_invalid")
    }

    /// A topic or group name, checked against the one naming rule.
    private static func name(_ value: String?, kind: String, code: String) throws -> String {
        guard let value, TopicName.isValid(value) else {
            throw HTTPError.badRequest(
                code: code,
                message: "\(kind) names are 1 to 200 characters of A-Z a-z 0-9 . _ -"
            )
        }
        return value
    }
}

/// Hands a subscription to the one task that reads it.
public final class SubscriptionBox: @unchecked Sendable {
    public let subscription: Subscription

    public init(_ subscription: Subscription) {
        self.subscription = subscription
    }
}
