import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SwitchboardProtos

/// Topics over gRPC: `switchboard.v1.Topics` on the server's gRPC listener (`--via grpc`).
public struct GRPCTopicsClient: Sendable {
    /// A message as a gRPC subscriber gets it.
    public struct Delivery: Sendable {
        public var offset: Int64
        public var data: Data
    }

    public struct AddressError: Error, CustomStringConvertible {
        public var address: String
        public var description: String { "gRPC address \(address) is not HOST:PORT" }
    }

    private let topics: Switchboard_V1_Topics.Client<HTTP2ClientTransport.Posix>

    /// Connects to `address` (`HOST:PORT`, h2c), runs `body` with a client, then closes the connection.
    public static func with<Result: Sendable>(
        address: String,
        _ body: (GRPCTopicsClient) async throws -> Result
    ) async throws -> Result {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]) else {
            throw AddressError(address: address)
        }
        let host = String(address[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        return try await withGRPCClient(
            transport: .http2NIOPosix(target: .dns(host: host, port: port), transportSecurity: .plaintext)
        ) { client in
            try await body(GRPCTopicsClient(topics: Switchboard_V1_Topics.Client(wrapping: client)))
        }
    }

    /// Publishes one message; returns once it is durable.
    public func publish(topic: String, data: Data, contentType: String? = nil) async throws -> SwitchboardClient.Receipt
    {
        var request = Switchboard_V1_PublishRequest()
        request.topic = topic
        request.data = data
        request.contentType = contentType ?? ""
        let stored = try await topics.publish(request)
        return SwitchboardClient.Receipt(
            topic: stored.topic,
            offset: stored.offset,
            id: stored.id,
            timestamp: stored.timestamp
        )
    }

    /// The topic's messages after `after` (or from now on), live; ends when the stream does.
    public func messages(topic: String, after: Int64?) -> AsyncThrowingStream<Delivery, any Error> {
        var request = Switchboard_V1_SubscribeRequest()
        request.topic = topic
        if let after {
            request.after = after
        }
        return AsyncThrowingStream { [request] continuation in
            let call = Task {
                do {
                    try await topics.subscribe(request) { response in
                        for try await event in response.messages {
                            if case .message(let message) = event.event {
                                continuation.yield(Delivery(offset: message.offset, data: message.data))
                            }
                        }
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in call.cancel() }
        }
    }
}
