import CoreMetrics
import SwitchboardStore
import Synchronization

/// The live subscriber queues of every topic; the broker fans committed messages out through it.
final class SubscriberRegistry: Sendable {
    private let topics = Mutex<[String: [ObjectIdentifier: SubscriberQueue]]>([:])
    private let queueCapacity: Int
    /// Live subscriptions and long polls waiting, as `switchboard_subscribers`.
    private let gauge: Meter

    init(queueCapacity: Int, metrics: any MetricsFactory) {
        self.queueCapacity = queueCapacity
        self.gauge = Meter(label: "switchboard_subscribers", factory: metrics)
    }

    func register(topic: String) -> SubscriberQueue {
        let queue = SubscriberQueue(capacity: queueCapacity)
        topics.withLock { $0[topic, default: [:]][ObjectIdentifier(queue)] = queue }
        gauge.increment()
        return queue
    }

    func unregister(_ queue: SubscriberQueue, from topic: String) {
        let removed = topics.withLock { all in
            defer {
                if all[topic]?.isEmpty == true {
                    all[topic] = nil
                }
            }
            return all[topic]?.removeValue(forKey: ObjectIdentifier(queue)) != nil
        }
        if removed {
            gauge.decrement()
        }
    }

    /// Hands committed messages, in offset order, to every queue of their topic.
    func fanOut(_ messages: [StoredMessage]) {
        for (topic, batch) in Dictionary(grouping: messages, by: \.topic) {
            let queues = topics.withLock { $0[topic].map { Array($0.values) } ?? [] }
            for queue in queues {
                queue.push(batch)
            }
        }
    }

    /// Sends every subscriber of `topic`, or of every topic when `nil`, back to the store.
    func readStore(topic: String?) {
        let queues = topics.withLock { all in
            topic.map { all[$0].map { Array($0.values) } ?? [] } ?? all.values.flatMap(\.values)
        }
        for queue in queues {
            queue.readStore()
        }
    }

    /// Ends every subscription (on shutdown).
    func closeAll() {
        for queue in topics.withLock({ $0.values.flatMap(\.values) }) {
            queue.close()
        }
    }
}
