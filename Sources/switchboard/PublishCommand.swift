import ArgumentParser
import Foundation
import NIOCore
import SwitchboardClient

/// `switchboard publish TOPIC [DATA | -]`: publishes one message and prints where it landed.
struct PublishCommand: SwitchboardClientCommand {
    static let configuration = CommandConfiguration(
        commandName: "publish",
        abstract: "Publish a message to a topic.",
        discussion: "Prints the receipt as JSON once the message is durable."
    )

    @OptionGroup var client: ClientOptions
    @Argument(help: "The topic.") var topic: String
    @Argument(help: "The message; - or nothing reads it from standard input.") var data: String?
    @Option(help: "Content-Type of the message.") var contentType = "text/plain; charset=utf-8"
    @Option(help: "http or grpc.") var via: Transport = .http

    enum Transport: String, ExpressibleByArgument, CaseIterable {
        case http
        case grpc
    }

    func run() async throws {
        let body: ByteBuffer
        if let data, data != "-" {
            body = ByteBuffer(string: data)
        } else {
            body = ByteBuffer(bytes: FileHandle.standardInput.readDataToEndOfFile())
        }
        do {
            let receipt =
                switch via {
                case .http:
                    try await SwitchboardClient(baseURL: client.url)
                        .publish(topic: topic, body: body, contentType: contentType)
                case .grpc:
                    try await GRPCTopicsClient.with(address: client.grpc) { grpc in
                        try await grpc.publish(
                            topic: topic,
                            data: Data(body.readableBytesView),
                            contentType: contentType
                        )
                    }
                }
            print(
                #"{"topic":"\#(receipt.topic)","offset":\#(receipt.offset),"id":"\#(receipt.id)","timestamp":\#(receipt.timestamp)}"#
            )
        } catch {
            throw Self.failing(error)
        }
    }
}
