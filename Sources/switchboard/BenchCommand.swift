import ArgumentParser
import SwitchboardClient

/// `switchboard bench`: fan-out from one publisher to many subscribers of a running server.
struct BenchCommand: SwitchboardClientCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure fan-out: deliveries/s, publish-to-delivery latency, and exact loss/duplicate/order counts.",
        discussion: "Runs against a server that is already running (--url). Deliveries/s asked = subscribers x rate."
    )

    @OptionGroup var client: ClientOptions
    @Option(help: "Subscribers on the topic.") var subscribers = 100
    @Option(help: "Messages published per second.") var rate = 100
    @Option(help: "Seconds of publishing.") var seconds = 5
    @Option(help: "ws, sse or grpc.") var via = "ws"
    @Option(help: "Payload size in bytes.") var size = 64

    func run() async throws {
        guard let transport = FanOutBenchmark.Transport(rawValue: via) else {
            throw ValidationError("--via must be ws, sse or grpc")
        }
        var options = FanOutBenchmark.Options()
        options.subscribers = subscribers
        options.rate = rate
        options.seconds = seconds
        options.transport = transport
        options.grpcAddress = client.grpc
        options.payloadBytes = size
        do {
            print(try await FanOutBenchmark(baseURL: client.url, options: options).run())
        } catch {
            throw Self.failing(error)
        }
    }
}
