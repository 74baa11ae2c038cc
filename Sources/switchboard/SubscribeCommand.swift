import ArgumentParser
import Foundation
import SwitchboardClient

/// `switchboard subscribe TOPIC --via poll|long-poll|sse|ws|grpc [--after N]`: prints each message as it comes.
struct SubscribeCommand: SwitchboardClientCommand {
    static let configuration = CommandConfiguration(
        commandName: "subscribe",
        abstract: "Print a topic's messages as they arrive, one line each: OFFSET<tab>DATA.",
        discussion: "Runs until interrupted, or until --count messages have been printed."
    )

    enum Transport: String, ExpressibleByArgument, CaseIterable {
        case poll
        case longPoll = "long-poll"
        case sse
        case ws
        case grpc
    }

    @OptionGroup var client: ClientOptions
    @Argument(help: "The topic.") var topic: String
    @Option(help: "How to receive: poll, long-poll, sse, ws or grpc.") var via: Transport = .sse
    @Option(help: "Start after this offset (default: new messages only).") var after: Int64?
    @Option(help: "Stop after this many messages.") var count: Int?
    @Option(help: "Seconds between short polls.") var interval: Double = 1

    func run() async throws {
        let switchboard = SwitchboardClient(baseURL: client.url, timeout: .seconds(120))
        var printed = 0
        func emit(offset: Int64, data: String) -> Bool {
            FileHandle.standardOutput.write(Data("\(offset)\t\(data)\n".utf8))
            printed += 1
            return count.map { printed >= $0 } ?? false
        }
        do {
            switch via {
            case .sse:
                for try await event in try await switchboard.events(topic: topic, after: after) {
                    guard event.event == nil, let offset = event.id.flatMap(Int64.init) else { continue }
                    if emit(offset: offset, data: event.data) { return }
                }
            case .ws:
                for try await message in try await switchboard.webSocketMessages(topic: topic, after: after) {
                    if emit(offset: message.offset, data: message.data ?? message.dataBase64 ?? "") { return }
                }
            case .grpc:
                try await GRPCTopicsClient.with(address: client.grpc) { grpc in
                    for try await message in grpc.messages(topic: topic, after: after) {
                        if emit(offset: message.offset, data: String(decoding: message.data, as: UTF8.self)) { return }
                    }
                }
            case .poll, .longPoll:
                var position: Int64
                if let after {
                    position = after
                } else {
                    position = try await switchboard.messages(topic: topic, after: 0, limit: 1).latestOffset
                }
                while true {
                    let wait: Duration? = via == .longPoll ? .seconds(30) : nil
                    let page = try await switchboard.messages(topic: topic, after: position, limit: 100, wait: wait)
                    for message in page.messages {
                        if emit(offset: message.offset, data: message.data ?? message.dataBase64 ?? "") { return }
                    }
                    position = page.next
                    if via == .poll && page.messages.isEmpty {
                        try await Task.sleep(for: .milliseconds(Int(interval * 1000)))
                    }
                }
            }
        } catch {
            throw Self.failing(error)
        }
    }
}
