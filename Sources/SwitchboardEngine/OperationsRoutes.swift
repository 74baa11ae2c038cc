import NIOCore

/// What every Switchboard server answers its operators — `serve` on its API listener, the edge on its
/// admin listener: `GET /healthz` (the process answers), `GET /metrics`, `GET /console` (the web console:
/// `console.html` beside this file, compiled into the binary, a page that reads the API of its origin
/// like any client), and for administrators `GET /v1/connections` (the execution model and the kernel's
/// view of the sockets, `KernelView`) and `GET /v1/requests/slowest` (`SlowRequests`).
public struct OperationsRoutes: Sendable {
    /// The console page, as served.
    public static let consolePage: [UInt8] = PackageResources.console_html

    /// Writes the Prometheus text of the server's registry.
    public var emitMetrics: @Sendable (inout [UInt8]) -> Void
    /// The listener's settings, for the execution model `/v1/connections` reports; `nil` where listeners
    /// differ (the edge's, which its own page lists).
    public var engine: EngineConfiguration?
    public var slowRequests: SlowRequests
    /// What each listening socket serves.
    public var listeners: ListenerDirectory
    /// Throws unless the caller may see the administrators' views.
    public var authorizeAdministrator: @Sendable () throws -> Void

    public init(
        emitMetrics: @escaping @Sendable (inout [UInt8]) -> Void,
        engine: EngineConfiguration?,
        slowRequests: SlowRequests,
        listeners: ListenerDirectory,
        authorizeAdministrator: @escaping @Sendable () throws -> Void
    ) {
        self.emitMetrics = emitMetrics
        self.engine = engine
        self.slowRequests = slowRequests
        self.listeners = listeners
        self.authorizeAdministrator = authorizeAdministrator
    }

    public func register(in router: inout Router) {
        router.addImmediate(.GET, "/healthz") { _ in
            .json(ByteBuffer(string: #"{"status":"ok"}"#))
        }
        let emitMetrics = self.emitMetrics
        router.addImmediate(.GET, "/metrics") { _ in .prometheus(emitMetrics) }
        let (authorize, engine, slowRequests, listeners) = (
            authorizeAdministrator, self.engine, self.slowRequests, self.listeners
        )
        router.add(.GET, "/v1/connections") { _ in
            try authorize()
            return .json(ByteBuffer(bytes: Self.connections(KernelView.read(), engine: engine, listeners: listeners)))
        }
        router.add(.GET, "/v1/requests/slowest") { _ in
            try authorize()
            return .json(ByteBuffer(bytes: slowRequests.json()))
        }
        let console = ByteBuffer(bytes: Self.consolePage)
        router.addImmediate(.GET, "/console") { _ in
            Response(
                headers: [
                    "Content-Type": "text/html; charset=utf-8",
                    "Cache-Control": "no-cache",
                    // The page's own script and styles, and the API of this origin; never framed.
                    "Content-Security-Policy":
                        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                        + "connect-src 'self' ws: wss:; img-src 'self' data:; frame-ancestors 'none'",
                ],
                body: .buffer(console)
            )
        }
    }

    /// The execution model and what the kernel knows of the server's sockets, each listening one named
    /// with what it serves.
    static func connections(_ view: KernelView, engine: EngineConfiguration?, listeners: ListenerDirectory) -> [UInt8] {
        var body = JSONObjectWriter(capacity: 4096)
        body.string("executionModel", engine?.executionModel.rawValue)
        body.number("eventLoops", engine?.eventLoops)
        // The HTTP listeners' backlog as the kernel applies it.
        let backlog = engine?.backlog ?? EngineConfiguration().backlog
        body.number("backlog", view.maximumBacklog.map { min($0, backlog) } ?? backlog)
        body.raw(
            "listeners",
            JSONObjectWriter.array(view.listeners) { writer, listener in
                writer.string("address", listener.address)
                writer.number("acceptQueue", listener.acceptQueue)
                let known = listeners.listener(port: listener.port)
                writer.string("serves", known?.serves)
                writer.string("executionModel", known?.executionModel?.rawValue)
                writer.number("eventLoops", known?.eventLoops)
            }
        )
        body.number("listenOverflows", view.listenOverflows)
        body.number("listenDrops", view.listenDrops)
        body.number("establishedConnections", view.establishedConnections)
        body.raw(
            "connections",
            JSONObjectWriter.array(view.connections) { writer, connection in
                writer.string("local", connection.local)
                writer.string("peer", connection.peer)
                writer.number("rttMicroseconds", connection.rttMicroseconds)
                writer.number("rttVarianceMicroseconds", connection.rttVarianceMicroseconds)
                writer.number("congestionWindow", connection.congestionWindow)
                writer.number("unacknowledged", connection.unacknowledged)
                writer.number("totalRetransmissions", connection.totalRetransmissions)
            }
        )
        return body.finish()
    }
}
