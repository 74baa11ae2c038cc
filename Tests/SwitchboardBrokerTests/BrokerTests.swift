import Foundation
import SwitchboardSQLite
import SwitchboardStore
import Testing

@testable import SwitchboardBroker

/// The delivery core on a real SQLite store in a temporary directory.
@Suite struct BrokerTests {
    private func makeBroker(
        configure: (inout Broker.Configuration) -> Void = { _ in }
    ) throws -> Broker {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("broker-\(UUID().uuidString)")
        var configuration = Broker.Configuration()
        configure(&configuration)
        return Broker(store: try SQLiteStore(directory: directory.path), configuration: configuration)
    }

    private func publish(_ broker: Broker, _ topic: String, _ text: String) async throws -> StoredMessage {
        try await broker.publish(NewMessage(topic: topic, contentType: "text/plain", body: Data(text.utf8)))
    }

    private func texts(_ messages: [StoredMessage]) -> [String] {
        messages.map { String(decoding: $0.body, as: UTF8.self) }
    }

    @Test func offsetsAreDenseAndPerTopic() async throws {
        let broker = try makeBroker()
        #expect(try await publish(broker, "a", "one").offset == 1)
        #expect(try await publish(broker, "a", "two").offset == 2)
        #expect(try await publish(broker, "b", "other").offset == 1)
        let slice = try await broker.read(topic: "a", after: 1, limit: 10)
        #expect(texts(slice.messages) == ["two"])
        #expect(slice.earliestOffset == 1 && slice.latestOffset == 2)
    }

    @Test func concurrentPublishesGetEveryOffsetOnce() async throws {
        let broker = try makeBroker()
        let offsets = try await withThrowingTaskGroup(of: Int64.self) { group in
            for index in 0..<200 {
                group.addTask { try await self.publish(broker, "t", "m\(index)").offset }
            }
            return try await group.reduce(into: [Int64]()) { $0.append($1) }
        }
        #expect(offsets.sorted() == Array(1...200))
        #expect(try await broker.read(topic: "t", after: 0, limit: 1000).messages.count == 200)
    }

    @Test func subscriptionCatchesUpThenFollowsLiveWithoutGapOrDuplicate() async throws {
        let broker = try makeBroker()
        for index in 1...5 { _ = try await publish(broker, "t", "old\(index)") }
        let subscription = try await broker.subscribe(topic: "t", after: 2)
        let publisher = Task {
            for index in 1...20 { _ = try await publish(broker, "t", "new\(index)") }
        }
        var received: [Int64] = []
        while received.count < 23, let event = try await subscription.next() {
            if case .messages(let messages) = event { received += messages.map(\.offset) }
        }
        try await publisher.value
        #expect(received == Array(3...25))
    }

    @Test func liveOnlySubscriptionStartsAfterTheNewestMessage() async throws {
        let broker = try makeBroker()
        _ = try await publish(broker, "t", "before")
        let subscription = try await broker.subscribe(topic: "t", after: nil)
        _ = try await publish(broker, "t", "after")
        guard case .messages(let messages) = try await subscription.next() else {
            Issue.record("no messages")
            return
        }
        #expect(texts(messages) == ["after"])
    }

    @Test func slowSubscriberOverflowsToTheStoreAndLosesNothing() async throws {
        let broker = try makeBroker { $0.subscriberBuffer = 4 }
        let subscription = try await broker.subscribe(topic: "t", after: 0)
        for index in 1...50 { _ = try await publish(broker, "t", "m\(index)") }
        var received: [Int64] = []
        while received.count < 50, let event = try await subscription.next() {
            if case .messages(let messages) = event { received += messages.map(\.offset) }
        }
        #expect(received == Array(1...50))
    }

    @Test func longPollReturnsWhenAMessageArrivesOrEmptyOnTimeout() async throws {
        let broker = try makeBroker()
        let empty = try await broker.read(topic: "t", after: 0, limit: 10, waitingUpTo: .milliseconds(100))
        #expect(empty.messages.isEmpty)
        let started = ContinuousClock.now
        let poll = Task { try await broker.read(topic: "t", after: 0, limit: 10, waitingUpTo: .seconds(10)) }
        try await Task.sleep(for: .milliseconds(100))
        _ = try await publish(broker, "t", "hello")
        let slice = try await poll.value
        #expect(texts(slice.messages) == ["hello"])
        #expect(ContinuousClock.now - started < .seconds(5))
    }

    @Test func retentionTrimsAndReadersAreToldWhereTheLogNowStarts() async throws {
        let broker = try makeBroker { $0.retention = RetentionPolicy(maxMessages: 3) }
        for index in 1...10 { _ = try await publish(broker, "t", "m\(index)") }
        #expect(try await broker.applyRetention() == 7)
        let slice = try await broker.read(topic: "t", after: 0, limit: 100)
        #expect(slice.earliestOffset == 8)
        #expect(slice.messages.map(\.offset) == [8, 9, 10])
        let subscription = try await broker.subscribe(topic: "t", after: 0)
        #expect(try await subscription.next() == .trimmed(earliestOffset: 8))
        guard case .messages(let rest) = try await subscription.next() else {
            Issue.record("no messages after trim")
            return
        }
        #expect(rest.map(\.offset) == [8, 9, 10])
    }

    @Test func topicRetentionOverridesTheDefault() async throws {
        let broker = try makeBroker {
            $0.retention = RetentionPolicy(maxMessages: 5)
            $0.topicRetention = ["small": RetentionPolicy(maxMessages: 1)]
        }
        for index in 1...3 {
            _ = try await publish(broker, "small", "s\(index)")
            _ = try await publish(broker, "big", "b\(index)")
        }
        try await broker.applyRetention()
        #expect(try await broker.read(topic: "small", after: 0, limit: 10).earliestOffset == 3)
        #expect(try await broker.read(topic: "big", after: 0, limit: 10).earliestOffset == 1)
    }

    @Test func retentionByAgeDropsOldMessages() async throws {
        let broker = try makeBroker { $0.retention = RetentionPolicy(maxAgeSeconds: 60) }
        for index in 1...3 { _ = try await publish(broker, "t", "m\(index)") }
        #expect(try await broker.applyRetention(now: Date()) == 0)
        #expect(try await broker.applyRetention(now: Date().addingTimeInterval(120)) == 3)
    }

    @Test func consumerGroupsRememberTheirCommittedOffset() async throws {
        let broker = try makeBroker()
        #expect(try await broker.committedOffset(topic: "t", group: "g") == 0)
        try await broker.commit(topic: "t", group: "g", offset: 7)
        #expect(try await broker.committedOffset(topic: "t", group: "g") == 7)
        #expect(try await broker.committedOffset(topic: "t", group: "other") == 0)
    }

    @Test func topicNamesAreChecked() {
        #expect(TopicName.isValid("orders.eu-1_v2"))
        #expect(!TopicName.isValid(""))
        #expect(!TopicName.isValid("has space"))
        #expect(!TopicName.isValid("slash/y"))
        #expect(!TopicName.isValid(String(repeating: "a", count: 201)))
    }
}

@Suite struct BrokerServiceTests {
    @Test func retentionLoopRunsAndStopsOnShutdown() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("broker-\(UUID().uuidString)")
        var configuration = Broker.Configuration()
        configuration.retention = RetentionPolicy(maxMessages: 2)
        configuration.retentionInterval = .milliseconds(50)
        let broker = Broker(store: try SQLiteStore(directory: directory.path), configuration: configuration)
        for index in 1...5 {
            _ = try await broker.publish(NewMessage(topic: "t", body: Data("m\(index)".utf8)))
        }
        let running = Task { try await broker.run() }
        var earliest: Int64 = 0
        for _ in 0..<100 where earliest != 4 {
            try await Task.sleep(for: .milliseconds(20))
            earliest = try await broker.read(topic: "t", after: 0, limit: 0).earliestOffset
        }
        #expect(earliest == 4)
        running.cancel()
        try await running.value
    }
}
