import Foundation
import NIOCore
import SwitchboardEngine

extension EdgeConfiguration {
    /// Every mistake in the configuration, one `setting: problem` line each; empty when it can be used.
    public var problems: [String] {
        var problems: [String] = []
        let clusterNames = Set((clusters ?? []).map(\.name))
        if listeners.isEmpty {
            problems.append("listeners: at least one listener is needed")
        }
        for (index, listener) in listeners.enumerated() {
            problems += listener.problems(at: "listeners[\(index)]", clusters: clusterNames)
        }
        for (name, count) in Dictionary(grouping: listeners.map(\.name), by: { $0 }).mapValues(\.count) where count > 1
        {
            problems.append("listeners: the name \(name) is used \(count) times")
        }
        if let admin, SettingValue.hostAndPort(admin) == nil {
            problems.append("admin: expected HOST:PORT, got '\(admin)'")
        }
        if let drain = drainTimeout, SettingValue.duration(drain) == nil {
            problems.append("drainTimeout: expected a duration such as 10s, got '\(drain)'")
        }
        for (index, cluster) in (clusters ?? []).enumerated() {
            problems += cluster.problems(at: "clusters[\(index)]")
        }
        for (name, count) in Dictionary(grouping: (clusters ?? []).map(\.name), by: { $0 }).mapValues(\.count)
        where count > 1 {
            problems.append("clusters: the name \(name) is used \(count) times")
        }
        return problems
    }
}

extension EdgeConfiguration.Listener {
    fileprivate func problems(at path: String, clusters: Set<String>) -> [String] {
        var problems: [String] = []
        if SettingValue.hostAndPort(listen) == nil {
            problems.append("\(path).listen: expected HOST:PORT, got '\(listen)'")
        }
        if let model = executionModel, ExecutionModel(rawValue: model) == nil {
            problems.append("\(path).executionModel: expected single, shared-listener or reuseport, got '\(model)'")
        }
        func needsCluster(_ name: String, at setting: String) {
            if !clusters.contains(name) {
                problems.append("\(setting): no cluster is named \(name)")
            }
        }
        switch kind {
        case .http:
            if (routes ?? []).isEmpty {
                problems.append("\(path).routes: an http listener needs at least one route")
            }
            for (index, route) in (routes ?? []).enumerated() {
                needsCluster(route.cluster, at: "\(path).routes[\(index)].cluster")
                if let prefix = route.pathPrefix, !prefix.hasPrefix("/") {
                    problems.append("\(path).routes[\(index)].pathPrefix: must start with /, got '\(prefix)'")
                }
            }
        case .tcp:
            if let cluster {
                needsCluster(cluster, at: "\(path).cluster")
            } else {
                problems.append("\(path).cluster: a tcp listener needs a cluster")
            }
            if let version = proxyProtocol, ProxyProtocolHeader.Version(rawValue: version) == nil {
                problems.append("\(path).proxyProtocol: expected v1 or v2, got '\(version)'")
            }
            if tls != nil {
                problems.append("\(path).tls: only http listeners terminate TLS")
            }
        case .forward:
            for network in access?.allowNetworks ?? [] where IPNetwork(network) == nil {
                problems.append("\(path).access.allowNetworks: expected a network such as 10.0.0.0/8, got '\(network)'")
            }
            for port in access?.ports ?? [] where !(1...65535).contains(port) {
                problems.append("\(path).access.ports: \(port) is not a port")
            }
            if (access?.user == nil) != (access?.password == nil) {
                problems.append("\(path).access: user and password go together")
            }
        }
        return problems
    }
}

extension EdgeConfiguration.Cluster {
    fileprivate func problems(at path: String) -> [String] {
        var problems: [String] = []
        if upstreams.isEmpty {
            problems.append("\(path).upstreams: a cluster needs at least one upstream")
        }
        for (index, upstream) in upstreams.enumerated() {
            if SettingValue.hostAndPort(upstream.address) == nil {
                problems.append("\(path).upstreams[\(index)].address: expected HOST:PORT, got '\(upstream.address)'")
            }
            if let weight = upstream.weight, !(1...1000).contains(weight) {
                problems.append("\(path).upstreams[\(index)].weight: expected 1 to 1000, got \(weight)")
            }
        }
        if let balance, BalancingAlgorithm(rawValue: balance) == nil {
            problems.append(
                "\(path).balance: expected round-robin, weighted, least-connections, power-of-two or hash, got '\(balance)'"
            )
        }
        if balance == BalancingAlgorithm.hash.rawValue {
            let keys = [hashOn?.header != nil, hashOn?.cookie != nil, hashOn?.client == true].filter { $0 }
            if keys.count != 1 {
                problems.append("\(path).hashOn: with balance: hash, give one of header, cookie or client: true")
            }
        }
        let durations: [(String, String?)] = [
            ("healthCheck.interval", healthCheck?.interval), ("healthCheck.timeout", healthCheck?.timeout),
            ("eject.ejectFor", eject?.ejectFor), ("timeouts.connect", timeouts?.connect),
            ("timeouts.firstByte", timeouts?.firstByte), ("timeouts.idle", timeouts?.idle),
        ]
        for case (let setting, let text?) in durations where SettingValue.duration(text).map({ $0 > .zero }) != true {
            problems.append("\(path).\(setting): expected a duration such as 2s, got '\(text)'")
        }
        let counts: [(String, Int?)] = [
            ("healthCheck.healthy", healthCheck?.healthy), ("healthCheck.unhealthy", healthCheck?.unhealthy),
            ("eject.failures", eject?.failures), ("maxConnectionsPerUpstream", maxConnectionsPerUpstream),
        ]
        for case (let setting, let count?) in counts where count < 1 {
            problems.append("\(path).\(setting): expected a count of at least 1, got \(count)")
        }
        if let attempts = retries?.attempts, !(0...10).contains(attempts) {
            problems.append("\(path).retries.attempts: expected 0 to 10, got \(attempts)")
        }
        if let budget = retries?.budget, !(0...1).contains(budget) {
            problems.append("\(path).retries.budget: expected a share from 0 to 1, got \(budget)")
        }
        if let ca = tls?.ca, !FileManager.default.isReadableFile(atPath: ca) {
            problems.append("\(path).tls.ca: cannot read \(ca)")
        }
        if let check = healthCheck?.path, !check.hasPrefix("/") {
            problems.append("\(path).healthCheck.path: must start with /, got '\(check)'")
        }
        return problems
    }
}
