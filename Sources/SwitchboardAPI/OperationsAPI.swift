import NIOCore
import Prometheus
import SwitchboardEngine
import SwitchboardStore

/// `GET /healthz` (the process answers), `GET /readyz` (the store answers), `GET /metrics`,
/// `GET /openapi.json`, the OpenAPI 3.1 description of the HTTP API (`openapi.json` beside this file,
/// compiled into the binary), and `GET /console`, the web console (`console.html`, compiled in too: a
/// page that reads the API like any client, with the token its user gives it).
public struct OperationsAPI: Sendable {
    /// The OpenAPI description, as served.
    public static let openAPIDocument: [UInt8] = PackageResources.openapi_json
    /// The console page, as served.
    public static let consolePage: [UInt8] = PackageResources.console_html

    let store: any Store
    let registry: PrometheusCollectorRegistry
    /// The engine's settings, for the execution model `/v1/connections` reports.
    let engine: EngineConfiguration

    public init(store: any Store, registry: PrometheusCollectorRegistry, engine: EngineConfiguration) {
        self.store = store
        self.registry = registry
        self.engine = engine
    }

    public func register(in router: inout Router) {
        router.addImmediate(.GET, "/healthz") { _ in
            .json(ByteBuffer(string: #"{"status":"ok"}"#))
        }
        router.add(.GET, "/readyz") { _ in
            do {
                try await store.ping()
                return .json(ByteBuffer(string: #"{"status":"ready","store":"\#(store.kind)"}"#))
            } catch let error as StoreUnavailable {
                throw error
            } catch {
                throw HTTPError(
                    .serviceUnavailable,
                    code: "store_unavailable",
                    message: "The \(store.kind) store does not answer: \(error)"
                )
            }
        }
        router.addImmediate(.GET, "/metrics") { _ in .prometheus { registry.emit(into: &$0) } }
        let document = ByteBuffer(bytes: Self.openAPIDocument)
        router.addImmediate(.GET, "/openapi.json") { _ in .json(document) }
        router.add(.GET, "/v1/whoami") { _ in Self.whoami(try Caller.required()) }
        router.add(.GET, "/v1/connections") { _ in
            try Caller.authorize(.administer)
            return Self.connections(KernelView.read(), engine: engine)
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
}

extension OperationsAPI {
    /// Who the caller is, for pages such as the console that adapt to it: with authentication off,
    /// anyone may do anything.
    static func whoami(_ caller: Caller) -> Response {
        var body = JSONObjectWriter()
        switch caller {
        case .anyone:
            body.bool("authentication", false)
            body.bool("admin", true)
        case .principal(let principal):
            body.bool("authentication", true)
            body.string("subject", principal.subject)
            body.bool("admin", principal.admin)
            body.number("expiresAt", Int64(principal.expiresAt.timeIntervalSince1970 * 1000))
        }
        return .json(ByteBuffer(bytes: body.finish()))
    }
}

extension OperationsAPI {
    /// The execution model and what the kernel knows of the server's sockets (`KernelView`).
    static func connections(_ view: KernelView, engine: EngineConfiguration) -> Response {
        var body = JSONObjectWriter(capacity: 4096)
        body.string("executionModel", engine.executionModel.rawValue)
        body.number("eventLoops", engine.eventLoops)
        // The HTTP listeners' backlog as the kernel applies it.
        body.number("backlog", view.maximumBacklog.map { min($0, engine.backlog) } ?? engine.backlog)
        body.raw(
            "listeners",
            JSONObjectWriter.array(view.listeners) { writer, listener in
                writer.string("address", listener.address)
                writer.number("acceptQueue", listener.acceptQueue)
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
        return .json(ByteBuffer(bytes: body.finish()))
    }
}

extension StoreUnavailable: HTTPErrorConvertible {
    /// 503 `store_unavailable`, to be retried: the store is down or did not answer in time.
    public var httpError: HTTPError {
        HTTPError(.serviceUnavailable, code: "store_unavailable", message: description, headers: ["Retry-After": "1"])
    }
}
