import NIOCore
import SwitchboardEngine

/// What `GET /v1/edge` on the admin listener shows: each listener with its kind, bound address, execution
/// model and routes, and each cluster's upstreams with their health now — healthy by the active checks,
/// ejected by the passive ones, requests in flight. Counts and latencies are in `/metrics`.
struct EdgeStatus {
    let runtime: EdgeRuntime
    let boundAddresses: [String: SocketAddress]

    func json() -> [UInt8] {
        var body = JSONObjectWriter(capacity: 4096)
        body.raw("listeners", JSONObjectWriter.array(runtime.configuration.listeners, listener))
        body.raw(
            "clusters",
            JSONObjectWriter.array(runtime.clusters.values.sorted { $0.name < $1.name }) { writer, cluster in
                writer.string("name", cluster.name)
                writer.string("balance", cluster.algorithm.rawValue)
                writer.bool("healthChecked", cluster.healthCheck != nil)
                writer.raw(
                    "upstreams",
                    JSONObjectWriter.array(cluster.upstreams) { writer, upstream in
                        writer.string("address", upstream.address)
                        writer.number("weight", upstream.weight)
                        writer.bool("healthy", upstream.isHealthy)
                        writer.bool("ejected", upstream.isEjected)
                        writer.number("inFlight", upstream.inFlight)
                    }
                )
            }
        )
        return body.finish()
    }

    private func listener(_ writer: inout JSONObjectWriter, _ listener: EdgeConfiguration.Listener) {
        writer.string("name", listener.name)
        writer.string("kind", listener.kind.rawValue)
        writer.string("listen", boundAddresses[listener.name]?.hostAndPort ?? listener.listen)
        writer.string("executionModel", listener.model.rawValue)
        writer.bool("tls", listener.tls != nil)
        writer.string("cluster", listener.cluster)
        writer.raw(
            "routes",
            listener.routes.map { routes in
                JSONObjectWriter.array(routes.enumerated()) { writer, item in
                    let (index, route) = item
                    writer.string("name", "\(index):\(route.cluster)")
                    writer.string("host", route.host)
                    writer.string("pathPrefix", route.pathPrefix ?? "/")
                    // The header's name only: its value may be a shared secret.
                    writer.string("header", route.header?.name)
                    writer.string("cluster", route.cluster)
                }
            }
        )
    }

}
