import Foundation
import SwitchboardStore
import Testing

/// Topics as logs, on every backend.
@Suite struct TopicStoreTests {
    private func message(_ topic: String, _ text: String) -> NewMessage {
        NewMessage(topic: topic, contentType: text.isEmpty ? nil : "text/plain", body: Data(text.utf8))
    }

    @Test(arguments: Backend.allCases)
    func offsetsAreDensePerTopicAndABatchKeepsItsOrder(_ backend: Backend) async throws {
        let store = try await backend.open()
        let stored = try await store.append([message("a", "1"), message("b", "x"), message("a", "2"), message("a", "")])
        #expect(stored.map(\.offset) == [1, 1, 2, 3])
        #expect(stored[3].contentType == nil)
        let slice = try await store.read(topic: "a", after: 1, limit: 10)
        #expect(slice.messages.map { String(decoding: $0.body, as: UTF8.self) } == ["2", ""])
        #expect(slice.messages == Array(stored[2...3]))
        #expect(slice.earliestOffset == 1 && slice.latestOffset == 3)
        let bounds = try await store.read(topic: "a", after: 0, limit: 0)
        #expect(bounds.messages.isEmpty && bounds.latestOffset == 3)
        #expect(
            try await store.topics(limit: 10) == [
                TopicSummary(name: "a", earliestOffset: 1, latestOffset: 3),
                TopicSummary(name: "b", earliestOffset: 1, latestOffset: 1),
            ]
        )
        let none = try await store.read(topic: "never", after: 0, limit: 10)
        #expect(none.messages.isEmpty && none.latestOffset == 0 && none.earliestOffset == 1)
    }

    /// Nodes appending to one topic at once: every offset is handed out once, with no gap.
    @Test(arguments: Backend.allCases)
    func concurrentAppendsFromSeveralNodesGetEveryOffsetOnce(_ backend: Backend) async throws {
        let nodes = try await backend.openCluster(nodes: 3)
        let offsets = try await withThrowingTaskGroup(of: [Int64].self) { group in
            for index in 0..<30 {
                let node = nodes[index % nodes.count]
                group.addTask {
                    try await node.append([self.message("t", "\(index)"), self.message("u", "\(index)")])
                        .filter { $0.topic == "t" }.map(\.offset)
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(offsets.sorted() == Array(1...30))
        let read = try await nodes[1].read(topic: "t", after: 0, limit: 100)
        #expect(read.messages.map(\.offset) == Array(1...30))
    }

    @Test(arguments: Backend.allCases)
    func retentionTrimsByCountAndByAge(_ backend: Backend) async throws {
        let store = try await backend.open()
        _ = try await store.append((1...10).map { message("t", "\($0)") })
        _ = try await store.append([message("small", "1")])
        let policy = RetentionPolicy(maxMessages: 4)
        #expect(try await store.topicNames(holdingMoreThan: policy, now: Date()) == ["t"])
        #expect(try await store.trim(topic: "t", keeping: policy, now: Date()) == 6)
        let slice = try await store.read(topic: "t", after: 0, limit: 100)
        #expect(slice.earliestOffset == 7 && slice.messages.map(\.offset) == [7, 8, 9, 10])
        let later = Date().addingTimeInterval(3600)
        let byAge = RetentionPolicy(maxAgeSeconds: 60)
        #expect(Set(try await store.topicNames(holdingMoreThan: byAge, now: later)) == ["t", "small"])
        #expect(try await store.trim(topic: "t", keeping: byAge, now: later) == 4)
        let empty = try await store.read(topic: "t", after: 0, limit: 100)
        #expect(empty.messages.isEmpty && empty.latestOffset == 10 && empty.earliestOffset == 11)
        // Offsets go on from where they were.
        #expect(try await store.append([message("t", "11")]).first?.offset == 11)
    }

    @Test(arguments: Backend.allCases)
    func consumerGroupsKeepTheirOffsets(_ backend: Backend) async throws {
        let nodes = try await backend.openCluster(nodes: 2)
        #expect(try await nodes[0].committedOffset(topic: "t", group: "g") == 0)
        try await nodes[0].commit(topic: "t", group: "g", offset: 5)
        try await nodes[1].commit(topic: "t", group: "h", offset: 2)
        #expect(try await nodes[1].committedOffset(topic: "t", group: "g") == 5)
        try await nodes[1].commit(topic: "t", group: "g", offset: 7)
        #expect(try await nodes[0].committedOffset(topic: "t", group: "g") == 7)
        #expect(try await nodes[0].committedOffset(topic: "t", group: "h") == 2)
    }
}
