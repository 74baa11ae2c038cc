import Foundation
import SwitchboardEngine
import Yams

/// The file `switchboard edge --config` reads (YAML or JSON): listeners, the routes of HTTP listeners and
/// the clusters of upstreams they lead to. Every field but the names and addresses has a default.
public struct EdgeConfiguration: Codable, Sendable, Equatable {
    public var listeners: [Listener]
    public var clusters: [Cluster]?
    /// `HOST:PORT` of the admin listener (`GET /metrics`, `GET /healthz`); none when absent.
    public var admin: String?
    /// On shutdown, how long connections and requests in flight get to finish. Default `10s`.
    public var drainTimeout: String?

    /// One listening socket and what it does with the connections it accepts.
    public struct Listener: Codable, Sendable, Equatable {
        public enum Kind: String, Codable, Sendable {
            /// Reverse proxy and Layer 7 load balancer.
            case http
            /// Layer 4 load balancer: bytes pumped to an upstream.
            case tcp
            /// Forward proxy: absolute-form requests and `CONNECT` tunnels.
            case forward
        }

        public var name: String
        public var kind: Kind
        /// `HOST:PORT`; port 0 picks a free one.
        public var listen: String
        /// `single`, `shared-listener` or `reuseport`, as for `serve`. Default `shared-listener`.
        public var executionModel: String?

        /// `executionModel`, or the default.
        var model: ExecutionModel { executionModel.flatMap(ExecutionModel.init(rawValue:)) ?? .sharedListener }
        /// TLS termination (`http` only): PEM certificate (with chain) and key; ALPN offers h2 and http/1.1.
        public var tls: TLSFiles?
        /// `http`: the routes, tried in order; the first that matches picks the cluster.
        public var routes: [Route]?
        /// `tcp`: the cluster that takes every connection.
        public var cluster: String?
        /// `tcp`: a PROXY protocol header (`v1` or `v2`) sent to the upstream first.
        public var proxyProtocol: String?
        /// `http`: keep `X-Forwarded-*` and `Forwarded` headers that clients send (and append to them)
        /// instead of replacing them. Default `false`: only a trusted hop in front may set them.
        public var trustForwarded: Bool?
        /// `http`: largest request body passed on. Default 1 GiB.
        public var maxBodyBytes: Int?
        /// `forward`: who may use the proxy and where to.
        public var access: ForwardAccess?
    }

    public struct TLSFiles: Codable, Sendable, Equatable {
        public var cert: String
        public var key: String
    }

    /// Sends requests that match to `cluster`; each condition given must hold.
    public struct Route: Codable, Sendable, Equatable {
        /// The request's host (without port), exactly, or `*.example.com` for its subdomains.
        public var host: String?
        /// The start of the path; default `/`.
        public var pathPrefix: String?
        /// A header that must be present, with this value when one is given.
        public var header: HeaderMatch?
        public var cluster: String
    }

    public struct HeaderMatch: Codable, Sendable, Equatable {
        public var name: String
        public var value: String?
    }

    /// Upstreams that serve the same thing, and how to share and watch them.
    public struct Cluster: Codable, Sendable, Equatable {
        public var name: String
        /// `round-robin` (default), `weighted`, `least-connections`, `power-of-two` or `hash`.
        public var balance: String?
        /// With `balance: hash`, what the key is.
        public var hashOn: HashKey?
        public var upstreams: [Upstream]
        public var healthCheck: HealthCheck?
        /// Passive ejection: after `failures` consecutive errors an upstream is left out for `ejectFor`.
        public var eject: Ejection?
        public var timeouts: Timeouts?
        public var retries: Retries?
        /// Keep-alive connections kept per upstream. Default 64.
        public var maxConnectionsPerUpstream: Int?
        /// Speak TLS to the upstreams (HTTP/2 where they offer it by ALPN, with many requests on one
        /// connection). Without `ca`, the system's trusted roots verify them.
        public var tls: UpstreamTLS?
    }

    public struct UpstreamTLS: Codable, Sendable, Equatable {
        /// PEM file of the certificate authorities to trust. The upstream's address is the name verified.
        public var ca: String?
    }

    public struct Upstream: Codable, Sendable, Equatable {
        /// `HOST:PORT`.
        public var address: String
        /// Share under `weighted`; default 1.
        public var weight: Int?
    }

    /// One of `header`, `cookie` or `client: true` (the client's address).
    public struct HashKey: Codable, Sendable, Equatable {
        public var header: String?
        public var cookie: String?
        public var client: Bool?
    }

    /// Active checks: `GET path` over HTTP (a TCP connect for `tcp` listeners) every `interval`.
    public struct HealthCheck: Codable, Sendable, Equatable {
        /// Default `/healthz`.
        public var path: String?
        /// Default `2s`.
        public var interval: String?
        /// Default `1s`.
        public var timeout: String?
        /// Consecutive successes that bring an upstream back. Default 2.
        public var healthy: Int?
        /// Consecutive failures that take it out. Default 2.
        public var unhealthy: Int?
    }

    public struct Ejection: Codable, Sendable, Equatable {
        /// Default 3.
        public var failures: Int?
        /// Default `10s`.
        public var ejectFor: String?
    }

    public struct Timeouts: Codable, Sendable, Equatable {
        /// Default `2s`.
        public var connect: String?
        /// Request sent to response head. Default `30s`.
        public var firstByte: String?
        /// Longest silence while a response streams. Default `300s`.
        public var idle: String?
    }

    public struct Retries: Codable, Sendable, Equatable {
        /// Further tries of an idempotent request on other upstreams. Default 2.
        public var attempts: Int?
        /// Retries as a share of requests (over the last 10 s) beyond which no more are made. Default 0.2.
        public var budget: Double?
    }

    public struct ForwardAccess: Codable, Sendable, Equatable {
        /// Destination ports allowed. Default `[80, 443]`.
        public var ports: [Int]?
        /// Networks (CIDR) allowed although loopback, private, link-local or metadata. Default none.
        public var allowNetworks: [String]?
        /// Basic proxy authentication; none when absent.
        public var user: String?
        public var password: String?
    }
}

extension EdgeConfiguration {
    /// Reads and validates the file at `path`.
    /// - Throws: `EdgeConfigurationError` with one line per problem.
    public static func load(path: String) throws -> EdgeConfiguration {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw EdgeConfigurationError(problems: ["config: cannot read \(path)"])
        }
        let configuration: EdgeConfiguration
        do {
            configuration = try YAMLDecoder().decode(EdgeConfiguration.self, from: text)
        } catch let DecodingError.keyNotFound(key, context) {
            throw EdgeConfigurationError(problems: ["\(context.path(with: key)): is required"])
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.dataCorrupted(context) {
            throw EdgeConfigurationError(
                problems: ["\(context.path()): \(context.debugDescription)"]
            )
        } catch {
            throw EdgeConfigurationError(problems: ["config: \(path) is not valid YAML: \(error)"])
        }
        let problems = configuration.problems
        guard problems.isEmpty else { throw EdgeConfigurationError(problems: problems) }
        return configuration
    }
}

extension DecodingError.Context {
    /// `listeners[0].listen`, as the file names it.
    fileprivate func path(with key: (any CodingKey)? = nil) -> String {
        let keys = codingPath + (key.map { [$0] } ?? [])
        var text = ""
        for key in keys {
            if let index = key.intValue {
                text += "[\(index)]"
            } else {
                text += text.isEmpty ? key.stringValue : ".\(key.stringValue)"
            }
        }
        return text.isEmpty ? "config" : text
    }
}

/// A configuration that cannot be used, with one `setting: problem` line per mistake.
public struct EdgeConfigurationError: Error, CustomStringConvertible {
    public var problems: [String]
    public var description: String { problems.joined(separator: "\n") }
}
