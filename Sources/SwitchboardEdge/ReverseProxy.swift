import AsyncHTTPClient
import Logging
import NIOCore
import NIOHTTP1
import SwitchboardEngine

/// The responder of an `http` listener: routes each request to a cluster, picks an upstream, and passes
/// the request on. A request without a body is handled on its connection's event loop without a task:
/// AsyncHTTPClient calls back on that loop (its connection may run on another: pinning both made its
/// pool open a connection per request); idempotent ones are retried on another upstream within the
/// cluster's retry budget. A request with a body is streamed to the upstream from a
/// task as it arrives, and tried once (its body cannot be replayed). Responses stream back as produced
/// (SSE and long polls flow), and a slow side slows the other instead of filling memory.
struct ReverseProxy: HTTPResponder {
    let listener: String
    let routes: [EdgeRoute]
    let clients: UpstreamClients
    let scheme: String
    let trustForwarded: Bool
    let maxBodyBytes: Int
    let logger: Logger

    func route(_ head: HTTPRequestHead) -> RouteMatch {
        guard let route = routes.first(where: { $0.matches(head) }) else {
            return .failure(HTTPError(.notFound, code: "no_route", message: "No route of listener \(listener) matches"))
        }
        let handler: Route.Handler =
            head.hasBody
            ? .streaming { request, body in try await forward(request, body: body, on: route) }
            : .future { request, loop in forward(request, on: route, loop: loop) }
        return .handler(handler, maxBodyBytes: maxBodyBytes, parameters: [:])
    }

    // MARK: Requests without a body

    private func forward(_ request: Request, on route: EdgeRoute, loop: any EventLoop) -> EventLoopFuture<Response> {
        let started = NIODeadline.now()
        route.cluster.retryBudget.recordRequest()
        let key = hashKey(of: request, in: route.cluster)
        return attempt(request, in: route.cluster, key: key, tried: [], loop: loop).map { response in
            record(route, status: response.status, since: started)
            return response
        }
    }

    /// Tries the next upstream, and on failure (or a 502/503/504 whose body was collected) another,
    /// while the request is idempotent and the attempts and the budget allow.
    private func attempt(
        _ request: Request,
        in cluster: UpstreamCluster,
        key: String?,
        tried: [UpstreamTarget],
        lastFailure: HTTPError? = nil,
        loop: any EventLoop
    ) -> EventLoopFuture<Response> {
        let failure = lastFailure ?? Self.noUpstream(cluster)
        guard let upstream = cluster.pick(key: key, excluding: tried) else {
            return loop.makeSucceededFuture(.error(failure))
        }
        if !tried.isEmpty {
            guard request.method.isIdempotent, tried.count <= cluster.retryAttempts, cluster.retryBudget.takeRetry()
            else { return loop.makeSucceededFuture(.error(failure)) }
            upstream.metrics.retries.increment()
        }
        let tried = tried + [upstream]
        return send(request, to: upstream, in: cluster, loop: loop).flatMap { response in
            // A collected 502/503/504 goes to another upstream when one may be tried; else it is the answer.
            guard [502, 503, 504].contains(response.status.code), case .buffer = response.body,
                request.method.isIdempotent, tried.count <= cluster.retryAttempts,
                cluster.pick(key: key, excluding: tried) != nil
            else { return loop.makeSucceededFuture(response) }
            cluster.recordFailure(upstream)
            let answered = HTTPError(
                .badGateway,
                code: "upstream_error",
                message: "\(upstream.address) answered \(response.status.code)"
            )
            return attempt(request, in: cluster, key: key, tried: tried, lastFailure: answered, loop: loop)
        }.flatMapError { error in
            if let error = error as? HTTPError, error.status == .badRequest {
                return loop.makeSucceededFuture(.error(error))  // The request's fault: no upstream is to blame.
            }
            let error = error as? HTTPError ?? Self.gatewayError(error, upstream: upstream)
            cluster.recordFailure(upstream)
            log(error, upstream: upstream, cluster: cluster)
            return attempt(request, in: cluster, key: key, tried: tried, lastFailure: error, loop: loop)
        }
    }

    /// One exchange with `upstream`, whose progress AsyncHTTPClient reports on `loop`; the response is
    /// answered once its head arrives, within the first-byte timeout.
    private func send(
        _ request: Request,
        to upstream: UpstreamTarget,
        in cluster: UpstreamCluster,
        loop: any EventLoop
    ) -> EventLoopFuture<Response> {
        let pool = clients.pool(for: cluster).flatMap { $0.serves(loop) ? $0 : nil }
        var outgoing: HTTPClient.Request?
        if pool == nil {
            do {
                outgoing = try HTTPClient.Request(
                    url: url(of: request, at: upstream, in: cluster),
                    method: request.method,
                    headers: upstreamHeaders(for: request)
                )
            } catch {
                return loop.makeFailedFuture(
                    HTTPError(.badRequest, code: "invalid_target", message: "\(request.head.uri) cannot be passed on")
                )
            }
        }
        upstream.begin()
        let started = NIODeadline.now()
        let answer = loop.makePromise(of: Response.self)
        let response = UpstreamResponse(on: loop, isHead: request.method == .HEAD, answer: answer) {
            upstream.end()
        }
        if let pool {
            exchange(request, with: upstream, over: pool, answering: response, on: loop)
        } else if let outgoing {
            let task = clients.client(for: cluster).execute(
                request: outgoing,
                delegate: UpstreamResponseDelegate(response),
                eventLoop: .delegate(on: loop),
                logger: logger
            )
            response.cancel = { task.cancel() }
        }
        // Not AsyncHTTPClient's deadline: that one would also cut a response that streams for long.
        let firstByte = loop.scheduleTask(in: cluster.firstByteTimeout) {
            if !response.hasAnswered {
                response.timedOut = true
                response.cancel()
            }
        }
        return answer.futureResult.map { answered in
            firstByte.cancel()
            upstream.metrics.latency.recordNanoseconds((NIODeadline.now() - started).nanoseconds)
            if answered.status.code < 500 {
                upstream.recordSuccess()
            }
            return answered
        }.flatMapErrorThrowing { error in
            firstByte.cancel()
            if response.timedOut || error is UpstreamExchangeHandler.Silent {
                throw HTTPError(
                    .gatewayTimeout,
                    code: "upstream_timeout",
                    message: "\(upstream.address) did not answer in time"
                )
            }
            throw Self.gatewayError(error, upstream: upstream)
        }
    }

    /// The request over a connection of the edge's own pool on `loop`: an idle one if there is one (and a
    /// fresh one if that turns out closed), else a new one.
    private func exchange(
        _ request: Request,
        with upstream: UpstreamTarget,
        over pool: UpstreamConnectionPool,
        answering response: UpstreamResponse,
        on loop: any EventLoop
    ) {
        var head = HTTPRequestHead(
            version: .http1_1,
            method: request.method,
            uri: request.head.uri,
            headers: upstreamHeaders(for: request)
        )
        if !head.headers.contains(name: "host") {
            head.headers.add(name: "Host", value: upstream.address)
        }
        let outgoing = head
        @Sendable func send(over connection: UpstreamConnection, ifStale: (@Sendable () -> Void)?) {
            response.cancel = { connection.channel.close(promise: nil) }
            connection.send(outgoing, to: response, ifStale: ifStale)
        }
        @Sendable func sendOverFreshConnection() {
            pool.connect(upstream, on: loop).whenComplete { result in
                switch result {
                case .success(let connection): send(over: connection, ifStale: nil)
                case .failure(let error): response.receiveError(error)
                }
            }
        }
        pool.lease(upstream, on: loop).whenComplete { result in
            switch result {
            case .success(let (connection, reused)):
                send(over: connection, ifStale: reused ? sendOverFreshConnection : nil)
            case .failure(let error):
                response.receiveError(error)
            }
        }
    }

    // MARK: Requests with a body

    /// One try, the body streamed from the client to the upstream as it arrives.
    private func forward(_ request: Request, body: RequestBodyStream, on route: EdgeRoute) async throws -> Response {
        let started = NIODeadline.now()
        let cluster = route.cluster
        cluster.retryBudget.recordRequest()
        guard let upstream = cluster.pick(key: hashKey(of: request, in: cluster)) else {
            record(route, status: .serviceUnavailable, since: started)
            return .error(Self.noUpstream(cluster))
        }
        do {
            let response = try await stream(request, body: body, to: upstream, in: cluster)
            record(route, status: response.status, since: started)
            return response
        } catch let error as HTTPError {
            cluster.recordFailure(upstream)
            log(error, upstream: upstream, cluster: cluster)
            record(route, status: error.status, since: started)
            return .error(error)
        }
    }

    /// The response head within the first-byte timeout, its body streamed after.
    private func stream(
        _ request: Request,
        body: RequestBodyStream,
        to upstream: UpstreamTarget,
        in cluster: UpstreamCluster
    ) async throws -> Response {
        var outgoing = HTTPClientRequest(url: url(of: request, at: upstream, in: cluster))
        outgoing.method = request.method
        outgoing.headers = upstreamHeaders(for: request)
        let length = request.head.headers.first(name: "content-length").flatMap(Int64.init)
        outgoing.body = .stream(body, length: length.map { .known($0) } ?? .unknown)
        upstream.begin()
        let started = NIODeadline.now()
        let response: HTTPClientResponse
        do {
            response = try await clients.client(for: cluster)
                .execute(outgoing, deadline: .now() + cluster.firstByteTimeout, logger: logger)
        } catch {
            upstream.end()
            // The client went away (its request was cancelled, or its body broke off): no fault of the
            // upstream's, which must not be ejected for it.
            if Task.isCancelled || error is CancellationError || error is RequestBodyStream.ClientGone { throw error }
            throw Self.gatewayError(error, upstream: upstream)
        }
        upstream.metrics.latency.recordNanoseconds((NIODeadline.now() - started).nanoseconds)
        if response.status.code < 500 {
            upstream.recordSuccess()
        }
        let upstreamBody = response.body
        return Response(
            status: response.status,
            headers: ProxyHeaders.removingHopByHop(response.headers),
            body: .stream { writer in
                defer { upstream.end() }
                for try await chunk in upstreamBody {
                    try await writer.write(chunk)
                }
            }
        )
    }

    // MARK: Shared

    private func url(of request: Request, at upstream: UpstreamTarget, in cluster: UpstreamCluster) -> String {
        "\(cluster.scheme)://\(upstream.address)\(request.head.uri)"
    }

    /// The client's headers less the hop-by-hop ones, with the forwarding headers of this hop.
    private func upstreamHeaders(for request: Request) -> HTTPHeaders {
        var headers = ProxyHeaders.removingHopByHop(request.head.headers)
        ProxyHeaders.addForwarding(
            to: &headers,
            client: request.remoteAddress,
            scheme: scheme,
            trustIncoming: trustForwarded
        )
        return headers
    }

    private func log(_ error: HTTPError, upstream: UpstreamTarget, cluster: UpstreamCluster) {
        logger.warning(
            "Upstream failed",
            metadata: [
                "cluster": "\(cluster.name)", "upstream": "\(upstream.address)", "code": "\(error.code)",
                "message": "\(error.message)",
            ]
        )
    }

    private static func noUpstream(_ cluster: UpstreamCluster) -> HTTPError {
        HTTPError(
            .serviceUnavailable,
            code: "no_healthy_upstream",
            message: "No upstream of \(cluster.name) is available"
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
        route.metrics.record(status: Int(status.code), nanoseconds: (NIODeadline.now() - started).nanoseconds)
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
