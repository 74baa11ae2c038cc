import AsyncHTTPClient
import NIOCore
import NIOPosix
import NIOSSL

/// For each cluster, an AsyncHTTPClient with the cluster's connect and idle timeouts and keep-alive pool
/// (requests with bodies, TLS upstreams), and for cleartext clusters the edge's own per-event-loop pool
/// (requests without a body, the common case, with no task or thread switch). With TLS, HTTP/2 is used where an upstream offers it (ALPN): the client's
/// requests are then streams of few connections.
final class UpstreamClients: Sendable {
    private let clients: [String: HTTPClient]
    private let pools: [String: UpstreamConnectionPool]

    init(clusters: [UpstreamCluster], eventLoopGroup: any EventLoopGroup) {
        var clients: [String: HTTPClient] = [:]
        var pools: [String: UpstreamConnectionPool] = [:]
        for cluster in clusters {
            if cluster.tls == nil {
                pools[cluster.name] = UpstreamConnectionPool(
                    eventLoopGroup: eventLoopGroup,
                    maxIdlePerUpstream: cluster.maxConnectionsPerUpstream,
                    connectTimeout: cluster.connectTimeout,
                    idleTimeout: cluster.idleTimeout
                )
            }
            var configuration = HTTPClient.Configuration()
            configuration.timeout = .init(connect: cluster.connectTimeout, read: cluster.idleTimeout)
            configuration.connectionPool = .init(
                idleTimeout: .seconds(60),
                concurrentHTTP1ConnectionsPerHostSoftLimit: cluster.maxConnectionsPerUpstream
            )
            configuration.redirectConfiguration = .disallow
            configuration.decompression = .disabled
            if let tls = cluster.tls {
                var client = TLSConfiguration.makeClientConfiguration()
                if let ca = tls.ca {
                    client.trustRoots = .file(ca)
                }
                configuration.tlsConfiguration = client
            }
            clients[cluster.name] = HTTPClient(
                eventLoopGroupProvider: .shared(eventLoopGroup),
                configuration: configuration
            )
        }
        self.clients = clients
        self.pools = pools
    }

    /// The edge's own keep-alive pool for a cleartext cluster's requests without a body; `nil` for TLS.
    func pool(for cluster: UpstreamCluster) -> UpstreamConnectionPool? {
        pools[cluster.name]
    }

    func client(for cluster: UpstreamCluster) -> HTTPClient {
        clients[cluster.name]!
    }

    /// Closes every pool once the requests in flight are done.
    func shutdown() async {
        for pool in pools.values {
            pool.closeIdle()
        }
        for client in clients.values {
            try? await client.shutdown()
        }
    }
}
