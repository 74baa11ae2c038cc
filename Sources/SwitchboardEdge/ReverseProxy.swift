import AsyncHTTPClient
import Logging
import NIOCore
import NIOHTTP1
import SwitchboardEngine

/// The responder of an `http` listener: routes each request to a cluster, picks an upstream, and passes
/// the request on with its body streamed and the response streamed back, so SSE and long polls flow as
/// they are produced and a slow side slows the other instead of filling memory. Idempotent requests
/// without a body are retried on another upstream within the cluster's retry budget.
struct ReverseProxy: HTTPResponder {
    let listener: String
    let routes: [EdgeRoute]
    let clients: UpstreamClients
    let scheme: String
    let trustForwarded: Bool
    let maxBodyBytes: Int
    let metrics: EdgeMetrics
    let logger: Logger

    func route(_ head: HTTPRequestHead) -> RouteMatch {
        guard let route = routes.first(where: { $0.matches(head) }) else {
            return .failure(HTTPError(.notFound, code: "no_route", message: "No route of listener \(listener) matches"))
        }
        return .handler(
            .streaming { request, body in try await forward(request, body: body, on: route) },
            maxBodyBytes: maxBodyBytes,
            parameters: [:]
        )
    }

    private func forward(_ request: Request, body: RequestBodyStream, on route: EdgeRoute) async throws -> Response {
        let started = NIODeadline.now()
        let cluster = route.cluster
        cluster.retryBudget.recordRequest()
        let key = hashKey(of: request, in: cluster)
        let canRetry = request.method.isIdempotent && !request.head.hasBody
        var tried: [UpstreamTarget] = []
        var lastFailure = HTTPError(
            .serviceUnavailable,
            code: "no_healthy_upstream",
            message: "No upstream of \(cluster.name) is available"
        )
        while let upstream = cluster.pick(key: key, excluding: tried) {
            if !tried.isEmpty {
                guard canRetry, tried.count <= cluster.retryAttempts, cluster.retryBudget.takeRetry() else { break }
                cluster.metrics.retries(upstream.address).increment()
            }
            tried.append(upstream)
            do {
                let response = try await send(request, body: body, to: upstream, in: cluster)
                if canRetry, [502, 503, 504].contains(response.status.code), tried.count <= cluster.retryAttempts {
                    cluster.recordFailure(upstream)
                    lastFailure = HTTPError(
                        .badGateway,
                        code: "upstream_error",
                        message: "\(upstream.address) answered \(response.status.code)"
                    )
                    continue
                }
                record(route, status: response.status, since: started)
                return response
            } catch let error as HTTPError {
                cluster.recordFailure(upstream)
                lastFailure = error
                logger.warning(
                    "Upstream failed",
                    metadata: [
                        "cluster": "\(cluster.name)", "upstream": "\(upstream.address)", "code": "\(error.code)",
                        "message": "\(error.message)",
                    ]
                )
            }
        }
        record(route, status: lastFailure.status, since: started)
        return .error(lastFailure)
    }

    /// One try on `upstream`: the response head within the first-byte timeout, its body streamed after.
    private func send(
        _ request: Request,
        body: RequestBodyStream,
        to upstream: UpstreamTarget,
        in cluster: UpstreamCluster
    ) async throws -> Response {
        var outgoing = HTTPClientRequest(url: "\(cluster.scheme)://\(upstream.address)\(request.head.uri)")
        outgoing.method = request.method
        outgoing.headers = ProxyHeaders.removingHopByHop(request.head.headers)
        ProxyHeaders.addForwarding(
            to: &outgoing.headers,
            client: request.remoteAddress,
            scheme: scheme,
            trustIncoming: trustForwarded
        )
        if request.head.hasBody {
            let length = request.head.headers.first(name: "content-length").flatMap(Int.init)
            outgoing.body = .stream(body, length: length.map { .known(Int64($0)) } ?? .unknown)
        }
        let metrics = cluster.metrics
        metrics.requests(upstream.address).increment()
        upstream.begin()
        metrics.active(upstream.address).increment()
        let started = NIODeadline.now()
        let response: HTTPClientResponse
        do {
            response = try await clients.client(for: cluster)
                .execute(outgoing, deadline: .now() + cluster.firstByteTimeout, logger: logger)
        } catch {
            upstream.end()
            metrics.active(upstream.address).decrement()
            throw Self.gatewayError(error, upstream: upstream)
        }
        cluster.metrics.latency(upstream.address).recordNanoseconds((NIODeadline.now() - started).nanoseconds)
        if response.status.code < 500 {
            upstream.recordSuccess()
        }
        var headers = ProxyHeaders.removingHopByHop(response.headers)
        if request.method == .HEAD {
            headers.remove(name: "content-length")
        }
        let upstreamBody = response.body
        return Response(
            status: response.status,
            headers: headers,
            body: .stream { writer in
                defer {
                    upstream.end()
                    metrics.active(upstream.address).decrement()
                }
                for try await chunk in upstreamBody {
                    try await writer.write(chunk)
                }
            }
        )
    }

    private func hashKey(of request: Request, in cluster: UpstreamCluster) -> String? {
        guard let on = cluster.hashKey else { return nil }
        if let header = on.header {
            return request.head.headers.first(name: header)
        }
        if let cookie = on.cookie {
            return request.head.headers["cookie"].lazy.flatMap { $0.split(separator: ";") }
                .map { $0.trimmingCharacters(in: .whitespaces) }
                .first { $0.hasPrefix("\(cookie)=") }
                .map { String($0.dropFirst(cookie.count + 1)) }
        }
        return request.remoteAddress?.ipAddress
    }

    private func record(_ route: EdgeRoute, status: HTTPResponseStatus, since started: NIODeadline) {
        let statusClass = "\(min(max(Int(status.code) / 100, 1), 5))xx"
        metrics.requests(listener: listener, route: route.name, statusClass: statusClass).increment()
        metrics.latency(listener: listener, route: route.name).recordNanoseconds(
            (NIODeadline.now() - started).nanoseconds
        )
    }

    /// The client-facing error for a try that got no response head.
    static func gatewayError(_ error: any Error, upstream: UpstreamTarget) -> HTTPError {
        if let error = error as? HTTPClientError, error == .deadlineExceeded || error == .readTimeout {
            return HTTPError(
                .gatewayTimeout,
                code: "upstream_timeout",
                message: "\(upstream.address) did not answer in time"
            )
        }
        return HTTPError(
            .badGateway,
            code: "upstream_unavailable",
            message: "\(upstream.address) could not be reached: \(error)"
        )
    }
}

extension HTTPMethod {
    /// RFC 9110 §9.2.2: methods whose repetition has the effect of one.
    var isIdempotent: Bool {
        switch self {
        case .GET, .HEAD, .OPTIONS, .TRACE, .PUT, .DELETE: true
        default: false
        }
    }
}

extension HTTPRequestHead {
    /// Whether a body follows the head.
    var hasBody: Bool {
        if headers.contains(name: "transfer-encoding") { return true }
        return (headers.first(name: "content-length").flatMap(Int.init) ?? 0) > 0
    }
}
