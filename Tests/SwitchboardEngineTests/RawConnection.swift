import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A plain TCP client for tests that must send exact bytes, including malformed HTTP.
final class RawConnection: Sendable {
    private let channel: any Channel
    private let collector: Collector

    private init(channel: any Channel, collector: Collector) {
        self.channel = channel
        self.collector = collector
    }

    static func connect(port: Int, host: String = "127.0.0.1") async throws -> RawConnection {
        let collector = Collector()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(CollectHandler(collector: collector))
                }
            }
            .connect(host: host, port: port)
            .get()
        return RawConnection(channel: channel, collector: collector)
    }

    func send(_ text: String) async throws {
        try await channel.writeAndFlush(ByteBuffer(string: text))
    }

    /// Everything received so far.
    var received: String { collector.state.withLockedValue { $0.text } }
    /// Whether the server closed the connection.
    var isClosed: Bool { collector.state.withLockedValue { $0.closed } }

    /// Waits until `condition` holds for the received text, or the server closes, or `timeout` passes.
    @discardableResult
    func receive(timeout: Duration = .seconds(5), until condition: (String) -> Bool) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let (text, closed) = collector.state.withLockedValue { ($0.text, $0.closed) }
            if condition(text) || closed { return text }
            try await Task.sleep(for: .milliseconds(5))
        }
        return received
    }

    /// Waits for `count` complete responses (heads counted by status line).
    func receiveResponses(_ count: Int, timeout: Duration = .seconds(5)) async throws -> String {
        try await receive(timeout: timeout) { text in
            text.components(separatedBy: "HTTP/1.1 ").count - 1 >= count && text.hasSuffix("}")
                || text.components(separatedBy: "HTTP/1.1 ").count - 1 > count
        }
    }

    /// Waits until the server closes the connection; returns whether it did within `timeout`.
    func waitForClose(timeout: Duration = .seconds(5)) async throws -> Bool {
        try await receive(timeout: timeout) { _ in false }
        return isClosed
    }

    func close() async {
        try? await channel.close()
    }

    final class Collector: Sendable {
        let state = NIOLockedValueBox((text: "", closed: false))
    }

    private final class CollectHandler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let collector: Collector

        init(collector: Collector) {
            self.collector = collector
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let text = String(buffer: unwrapInboundIn(data))
            collector.state.withLockedValue { $0.text += text }
        }

        func channelInactive(context: ChannelHandlerContext) {
            collector.state.withLockedValue { $0.closed = true }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }
}
