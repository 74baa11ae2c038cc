import NIOCore
import Prometheus
import SwitchboardEngine
import SwitchboardStore

/// `GET /healthz` (the process answers), `GET /readyz` (the store answers) and `GET /metrics`.
public struct OperationsAPI: Sendable {
    let store: any Store
    let registry: PrometheusCollectorRegistry

    public init(store: any Store, registry: PrometheusCollectorRegistry) {
        self.store = store
        self.registry = registry
    }

    public func register(in router: inout Router) {
        router.addImmediate(.GET, "/healthz") { _ in
            .json(ByteBuffer(string: #"{"status":"ok"}"#))
        }
        router.add(.GET, "/readyz") { _ in
            do {
                try await store.ping()
                return .json(ByteBuffer(string: #"{"status":"ready","store":"\#(store.kind)"}"#))
            } catch {
                throw HTTPError(
                    .serviceUnavailable,
                    code: "store_unavailable",
                    message: "The \(store.kind) store does not answer: \(error)"
                )
            }
        }
        router.addImmediate(.GET, "/metrics") { _ in .prometheus { registry.emit(into: &$0) } }
    }
}
