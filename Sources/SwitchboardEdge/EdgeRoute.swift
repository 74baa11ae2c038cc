import NIOHTTP1

/// A route of an `http` listener, ready to match request heads.
struct EdgeRoute: Sendable {
    let name: String
    let host: String?
    let pathPrefix: String
    let header: EdgeConfiguration.HeaderMatch?
    let cluster: UpstreamCluster
    let metrics: RouteMetrics

    init(_ route: EdgeConfiguration.Route, index: Int, cluster: UpstreamCluster, metrics: RouteMetrics) {
        name = "\(index):\(route.cluster)"
        self.metrics = metrics
        host = route.host?.lowercased()
        pathPrefix = route.pathPrefix ?? "/"
        header = route.header
        self.cluster = cluster
    }

    func matches(_ head: HTTPRequestHead) -> Bool {
        if let host {
            let requested = (head.headers.first(name: "host") ?? "").lowercased()
            let hostOnly = requested.hasPrefix("[") ? requested : String(requested.split(separator: ":").first ?? "")
            if host.hasPrefix("*.") {
                guard hostOnly.hasSuffix(host.dropFirst()) else { return false }
            } else if hostOnly != host {
                return false
            }
        }
        guard head.uri.hasPrefix(pathPrefix) else { return false }
        if let header {
            let values = head.headers[header.name]
            guard let wanted = header.value else { return !values.isEmpty }
            return values.contains(wanted)
        }
        return true
    }
}
