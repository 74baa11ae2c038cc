import NIOCore
import Prometheus
import SwitchboardEngine
import SwitchboardStore

/// The operators' routes of `serve`: the engine's (`OperationsRoutes`: health, metrics, the console, the
/// administrators' views of connections and slow requests) and `GET /readyz` (the store answers),
/// `GET /openapi.json`, the OpenAPI 3.1 description of the HTTP API (`openapi.json` beside this file,
/// compiled into the binary), and `GET /v1/whoami`, who the caller is.
public struct OperationsAPI: Sendable {
    /// The OpenAPI description, as served.
    public static let openAPIDocument: [UInt8] = PackageResources.openapi_json

    let store: any Store
    let registry: PrometheusCollectorRegistry
    /// The engine's settings, for the execution model `/v1/connections` reports.
    let engine: EngineConfiguration
    let slowRequests: SlowRequests
    let listeners: ListenerDirectory

    public init(
        store: any Store,
        registry: PrometheusCollectorRegistry,
        engine: EngineConfiguration,
        slowRequests: SlowRequests,
        listeners: ListenerDirectory
    ) {
        self.store = store
        self.registry = registry
        self.engine = engine
        self.slowRequests = slowRequests
        self.listeners = listeners
    }

    public func register(in router: inout Router) {
        let registry = self.registry
        OperationsRoutes(
            emitMetrics: { registry.emit(into: &$0) },
            engine: engine,
            slowRequests: slowRequests,
            listeners: listeners,
            authorizeAdministrator: { try Caller.authorize(.administer) }
        ).register(in: &router)
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
        let document = ByteBuffer(bytes: Self.openAPIDocument)
        router.addImmediate(.GET, "/openapi.json") { _ in .json(document) }
        router.add(.GET, "/v1/whoami") { _ in Self.whoami(try Caller.required()) }
    }
}

extension OperationsAPI {
    /// Who the caller is, for pages such as the console that adapt to it: with authentication off,
    /// anyone may do anything. `node` tells the console which pages this server has.
    static func whoami(_ caller: Caller) -> Response {
        var body = JSONObjectWriter()
        body.string("node", "serve")
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

extension StoreUnavailable: HTTPErrorConvertible {
    /// 503 `store_unavailable`, to be retried: the store is down or did not answer in time.
    public var httpError: HTTPError {
        HTTPError(.serviceUnavailable, code: "store_unavailable", message: description, headers: ["Retry-After": "1"])
    }
}
