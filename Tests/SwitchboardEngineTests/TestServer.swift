import CoreMetrics
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import SwitchboardEngine

/// Runs an `HTTPServer` on a free loopback port for the duration of `body`, then shuts it down gracefully.
enum TestServer {
    static func run(
        router: Router = .testRoutes,
        configure: (inout EngineConfiguration) -> Void = { _ in },
        _ body: @Sendable (_ port: Int, _ control: Control) async throws -> Void
    ) async throws {
        var configuration = EngineConfiguration()
        configuration.port = 0
        configuration.eventLoops = 2
        configure(&configuration)
        let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        let server = HTTPServer(
            configuration: configuration,
            responder: router,
            metrics: EngineMetrics(factory: NOOPMetricsHandler.instance),
            logger: logger
        ) { address in
            portContinuation.yield(address.port ?? 0)
        }
        let group = ServiceGroup(services: [server], logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { return }
            try await body(port, Control(group: group))
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    /// Lets a test start the server's graceful shutdown itself.
    struct Control: Sendable {
        let group: ServiceGroup

        func shutdown() async {
            await group.triggerGracefulShutdown()
        }
    }
}

extension Router {
    /// Routes that exercise the engine: echo, a slow handler, a streamed response and a small-body route.
    static var testRoutes: Router {
        var router = Router(defaultMaxBodyBytes: 1024)
        router.addImmediate(.GET, "/hello") { _ in .text("hello") }
        router.add(.POST, "/echo") { request in .text(String(buffer: request.body)) }
        router.add(.POST, "/tiny", maxBodyBytes: 8) { request in .text(String(buffer: request.body)) }
        router.add(.GET, "/items/{id}") { request in .text("item \(request.parameters["id"] ?? "")") }
        router.add(.GET, "/slow") { request in
            let milliseconds = Int(request.query["ms"] ?? "300") ?? 300
            try await Task.sleep(for: .milliseconds(milliseconds))
            return .text("slow done")
        }
        router.add(.GET, "/stream") { _ in
            Response(
                headers: ["Content-Type": "text/plain"],
                body: .stream { writer in
                    for index in 1...3 {
                        try await writer.write("part \(index)\n")
                    }
                }
            )
        }
        router.add(.GET, "/fail") { _ in throw TestFailure() }
        router.addStreaming(.PUT, "/count", maxBodyBytes: 4 << 20) { _, body in
            var bytes = 0
            var chunks = 0
            for try await chunk in body {
                bytes += chunk.readableBytes
                chunks += 1
                try await Task.sleep(for: .milliseconds(5))  // a slow consumer: reads must pause and resume
            }
            return .text("\(bytes) bytes")
        }
        router.addStreaming(.PUT, "/refuse", maxBodyBytes: 1 << 20) { _, _ in
            throw HTTPError(.conflict, code: "refused", message: "no")
        }
        router.add(.GET, "/wait-for-cancel") { _ in
            await CancellationProbe.shared.waitUntilCancelled()
            return .text("cancelled")
        }
        return router
    }
}

/// An error no handler maps to a status: the engine must answer 500.
struct TestFailure: Error {}

/// Lets a test see that a handler's task was cancelled when its client went away.
actor CancellationProbe {
    static let shared = CancellationProbe()
    private(set) var cancellations = 0

    func waitUntilCancelled() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(10))
        }
        cancellations += 1
    }
}
