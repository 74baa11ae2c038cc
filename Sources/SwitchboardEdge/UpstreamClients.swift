import AsyncHTTPClient
import NIOCore
import NIOPosix
import NIOSSL

/// One HTTP client per cluster, with the cluster's connect and idle timeouts and keep-alive pool, on
/// the edge's event loops. With TLS, HTTP/2 is used where an upstream offers it (ALPN): the client's
/// requests are then streams of few connections.
final class UpstreamClients: Sendable {
    private let clients: [String: HTTPClient]

    init(clusters: [UpstreamCluster], eventLoopGroup: any EventLoopGroup) {
        var clients: [String: HTTPClient] = [:]
        for cluster in clusters {
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
    }

    func client(for cluster: UpstreamCluster) -> HTTPClient {
        clients[cluster.name]!
    }

    /// Closes every pool once the requests in flight are done.
    func shutdown() async {
        for client in clients.values {
            try? await client.shutdown()
        }
    }
}
