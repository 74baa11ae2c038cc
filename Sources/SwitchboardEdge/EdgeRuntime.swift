import Foundation
import Logging
import NIOCore
import SwitchboardEngine

/// What one version of the configuration runs with: its clusters with their clients and health checks,
/// and per listener what serves its new connections and requests. A reload builds a new runtime and
/// swaps it in; requests and connections already under way keep the one they started with.
struct EdgeRuntime: Sendable {
    let configuration: EdgeConfiguration
    let clusters: [String: UpstreamCluster]
    let clients: UpstreamClients
    let healthCheckers: [HealthChecker]
    /// By listener name.
    let reverseProxies: [String: ReverseProxy]
    let tcpProxies: [String: TCPProxy]
    let forwardRules: [String: ForwardProxyHandler.Rules]
    /// Of the `forward` listeners.
    let forwardMetrics: [String: ListenerMetrics]

    /// - Precondition: `configuration` has no problems.
    init(
        _ configuration: EdgeConfiguration,
        eventLoopGroup: any EventLoopGroup,
        metrics: EdgeMetrics,
        logger: Logger,
        accessLog: AccessLog?
    ) {
        self.configuration = configuration
        let clusters = Dictionary(
            uniqueKeysWithValues: (configuration.clusters ?? []).map {
                ($0.name, UpstreamCluster($0, metrics: metrics))
            }
        )
        self.clusters = clusters
        let clients = UpstreamClients(clusters: Array(clusters.values), eventLoopGroup: eventLoopGroup)
        self.clients = clients
        let tcpClusters = Set(configuration.listeners.filter { $0.kind == .tcp }.compactMap(\.cluster))
        healthCheckers = clusters.values.filter { $0.healthCheck != nil }.map { cluster in
            HealthChecker(
                cluster: cluster,
                probe: tcpClusters.contains(cluster.name) ? .tcpConnect : .http(clients.client(for: cluster)),
                eventLoopGroup: eventLoopGroup,
                logger: logger
            )
        }
        var reverseProxies: [String: ReverseProxy] = [:]
        var tcpProxies: [String: TCPProxy] = [:]
        var forwardRules: [String: ForwardProxyHandler.Rules] = [:]
        var forwardMetrics: [String: ListenerMetrics] = [:]
        for listener in configuration.listeners {
            switch listener.kind {
            case .http:
                reverseProxies[listener.name] = ReverseProxy(
                    listener: listener.name,
                    routes: (listener.routes ?? []).enumerated().map { index, route in
                        EdgeRoute(
                            route,
                            index: index,
                            cluster: clusters[route.cluster]!,
                            metrics: metrics.route("\(index):\(route.cluster)", listener: listener.name)
                        )
                    },
                    clients: clients,
                    scheme: listener.tls == nil ? "http" : "https",
                    trustForwarded: listener.trustForwarded ?? false,
                    maxBodyBytes: listener.maxBodyBytes ?? 1 << 30,
                    logger: logger
                )
            case .tcp:
                tcpProxies[listener.name] = TCPProxy(
                    listener: listener.name,
                    cluster: clusters[listener.cluster!]!,
                    proxyProtocol: listener.proxyProtocol.flatMap(ProxyProtocolHeader.Version.init(rawValue:)),
                    metrics: metrics.listener(listener.name),
                    logger: logger,
                    accessLog: accessLog
                )
            case .forward:
                let access = listener.access
                forwardMetrics[listener.name] = metrics.listener(listener.name)
                forwardRules[listener.name] = ForwardProxyHandler.Rules(
                    ports: Set(access?.ports ?? [80, 443]),
                    allowedNetworks: (access?.allowNetworks ?? []).compactMap(IPNetwork.init),
                    credentials: access?.user.map { user in
                        "Basic " + Data("\(user):\(access?.password ?? "")".utf8).base64EncodedString()
                    },
                    connectTimeout: .seconds(5)
                )
            }
        }
        self.reverseProxies = reverseProxies
        self.tcpProxies = tcpProxies
        self.forwardRules = forwardRules
        self.forwardMetrics = forwardMetrics
    }

    /// The listeners' names, kinds and addresses: what a reload cannot change.
    var listenerShape: [String] {
        configuration.listeners.map { "\($0.name) \($0.kind.rawValue) \($0.listen) \($0.executionModel ?? "")" }
    }
}
