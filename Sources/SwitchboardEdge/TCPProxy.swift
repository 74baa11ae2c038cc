import Logging
import NIOCore
import NIOPosix
import SwitchboardEngine

/// A `tcp` listener's connections: each goes to an upstream of the cluster (tried in the balancer's
/// order until one connects), optionally after a PROXY protocol header, and then the bytes are pumped
/// both ways by a pair of glue handlers.
struct TCPProxy: Sendable {
    let listener: String
    let cluster: UpstreamCluster
    let proxyProtocol: ProxyProtocolHeader.Version?
    let metrics: ListenerMetrics
    let logger: Logger
    /// One line per connection when it closes; `nil` for none.
    let accessLog: AccessLog?

    func initialize(_ inbound: any Channel) -> EventLoopFuture<Void> {
        metrics.accepted.increment()
        metrics.active.increment()
        inbound.closeFuture.whenComplete { [metrics] _ in metrics.active.decrement() }
        // The client's half joins at once and reads nothing until the upstream's half joins it.
        let (client, server) = GlueHandler.matchedPair()
        GlueHandler.logWhenClosed(
            inbound,
            halves: (client, server),
            listener: listener,
            target: cluster.name,
            to: accessLog
        )
        closeWhenSilent(inbound, halves: (client, server))
        return inbound.eventLoop.makeCompletedFuture {
            try inbound.pipeline.syncOperations.addHandler(client)
            connect(inbound, glue: server, tried: [])
        }
    }

    private func connect(_ inbound: any Channel, glue server: GlueHandler, tried: [UpstreamTarget]) {
        // Only a hashing cluster needs the client's address as text (formatting it costs per connection).
        let key = cluster.hashKey == nil ? nil : inbound.remoteAddress?.ipAddress
        guard let upstream = cluster.pick(key: key, excluding: tried) else {
            logger.warning(
                "No upstream for connection",
                metadata: ["listener": "\(listener)", "cluster": "\(cluster.name)"]
            )
            inbound.close(promise: nil)
            return
        }
        ClientBootstrap(group: inbound.eventLoop)
            .connectTimeout(cluster.connectTimeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .connectingTo(upstream)
            .assumeIsolated()  // Connected on the client's own loop.
            .whenComplete { result in
                switch result {
                case .success(let outbound):
                    join(inbound, to: outbound, with: server, upstream: upstream)
                case .failure:
                    cluster.recordFailure(upstream)
                    connect(inbound, glue: server, tried: tried + [upstream])
                }
            }
    }

    private func join(
        _ inbound: any Channel,
        to outbound: any Channel,
        with server: GlueHandler,
        upstream: UpstreamTarget
    ) {
        upstream.begin()
        upstream.recordSuccess()
        outbound.closeFuture.whenComplete { _ in upstream.end() }
        if let proxyProtocol {
            let header = ProxyProtocolHeader.make(
                proxyProtocol,
                source: inbound.remoteAddress,
                destination: inbound.localAddress
            )
            outbound.write(header, promise: nil)
        }
        do {
            try outbound.pipeline.syncOperations.addHandler(server)
        } catch {
            inbound.close(promise: nil)
            outbound.close(promise: nil)
        }
    }

    /// Closes a tunnel through which nothing has passed either way for a whole idle period (checked once
    /// per period, so after one to two periods of silence): a vanished peer sends no FIN.
    private func closeWhenSilent(_ inbound: any Channel, halves: (client: GlueHandler, origin: GlueHandler)) {
        let halves = NIOLoopBound(halves, eventLoop: inbound.eventLoop)
        let lastSeen = NIOLoopBoundBox(-1, eventLoop: inbound.eventLoop)
        let check = inbound.eventLoop.scheduleRepeatedTask(
            initialDelay: cluster.idleTimeout,
            delay: cluster.idleTimeout
        ) { task in
            let (client, origin) = halves.value
            let seen = client.bytesRead + origin.bytesRead
            if seen == lastSeen.value {
                task.cancel()
                inbound.close(promise: nil)
            }
            lastSeen.value = seen
        }
        inbound.closeFuture.whenComplete { _ in check.cancel() }
    }
}
