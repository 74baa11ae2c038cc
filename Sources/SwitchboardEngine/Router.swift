import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// Decides from a request head alone which handler serves it and how large its body may be.
///
/// The engine asks before reading the body, so a route's body limit is enforced while bytes arrive.
public protocol HTTPResponder: Sendable {
    func route(_ head: HTTPRequestHead) -> RouteMatch
}

/// The outcome of routing a request head.
public enum RouteMatch: Sendable {
    /// A handler, the body limit of its route and the values of the route's `{name}` segments.
    case handler(Route.Handler, maxBodyBytes: Int, parameters: [String: String])
    /// No handler: answer with this error (404, 405 with `Allow`).
    case failure(HTTPError)
}

/// One method and path pattern with its handler, such as `GET /v1/topics/{topic}/messages`.
public struct Route: Sendable {
    /// How a route computes its response.
    public enum Handler: Sendable {
        /// Runs inline on the connection's event loop: for cheap work that never waits (health, metrics).
        case immediate(@Sendable (Request) throws -> Response)
        /// Runs in a task: for anything that awaits (the store, other services, timers).
        case async(@Sendable (Request) async throws -> Response)
        /// Starts on the connection's event loop and answers through a future of that loop: for work
        /// handed to another component that completes it later, without a task per request.
        case future(@Sendable (Request, any EventLoop) -> EventLoopFuture<Response>)
        /// Runs in a task that starts as soon as the head is routed and reads the body as it arrives (the
        /// request's `body` is empty): for uploads of any size.
        case streaming(@Sendable (Request, RequestBodyStream) async throws -> Response)
    }

    public var method: HTTPMethod
    public var segments: [Segment]
    /// The body limit of this route; `nil` takes the engine's default.
    public var maxBodyBytes: Int?
    public var handler: Handler

    /// A path segment: literal text or a named parameter written `{name}`.
    public enum Segment: Sendable, Equatable {
        case literal(Substring)
        case parameter(String)
    }

    public init(_ method: HTTPMethod, _ pattern: String, maxBodyBytes: Int? = nil, handler: Handler) {
        self.method = method
        self.segments = pattern.split(separator: "/").map { segment in
            segment.hasPrefix("{") && segment.hasSuffix("}")
                ? .parameter(String(segment.dropFirst().dropLast())) : .literal(segment)
        }
        self.maxBodyBytes = maxBodyBytes
        self.handler = handler
    }

    /// The path pattern as written, `/v1/topics/{topic}/messages`.
    public var pattern: String {
        "/"
            + segments.map { segment in
                switch segment {
                case .literal(let text): String(text)
                case .parameter(let name): "{\(name)}"
                }
            }.joined(separator: "/")
    }

    /// The parameters if `path` (already split) matches this route's pattern.
    func match(_ path: [Substring]) -> [String: String]? {
        guard path.count == segments.count else { return nil }
        var parameters: [String: String] = [:]
        for (segment, component) in zip(segments, path) {
            switch segment {
            case .literal(let text) where text == component: continue
            case .literal: return nil
            case .parameter(let name):
                let text = String(component)
                parameters[name] = text.contains("%") ? (text.removingPercentEncoding ?? text) : text
            }
        }
        return parameters
    }
}

extension Route.Handler {
    /// Runs the handler from a task, for layers that wrap every route (authentication, idempotency).
    /// - Parameter body: the body stream of a streaming route.
    public func respond(to request: Request, body: RequestBodyStream?, on eventLoop: any EventLoop) async throws
        -> Response
    {
        switch (self, body) {
        case (.immediate(let respond), _): try respond(request)
        case (.async(let respond), _): try await respond(request)
        case (.future(let respond), _): try await respond(request, eventLoop).get()
        case (.streaming(let respond), let body?): try await respond(request, body)
        case (.streaming, nil): throw HTTPError.internalError
        }
    }

    /// The same handler, run with `local` bound to `value`; each kind stays its kind (no task is added to
    /// an immediate or a future handler). A `future` handler sees the value while it starts, on its loop.
    public func binding<Value: Sendable>(_ local: TaskLocal<Value>, to value: Value) -> Route.Handler {
        switch self {
        case .immediate(let respond):
            .immediate { request in try local.withValue(value) { try respond(request) } }
        case .async(let respond):
            .async { request in try await local.withValue(value) { try await respond(request) } }
        case .future(let respond):
            .future { request, eventLoop in local.withValue(value) { respond(request, eventLoop) } }
        case .streaming(let respond):
            .streaming { request, body in try await local.withValue(value) { try await respond(request, body) } }
        }
    }

    /// A handler that runs `respond` in place of this one: a streaming route stays streaming; any other
    /// becomes a task whose answer completes a future of the connection's event loop, which `respond` is
    /// given to run the wrapped handler on (so a `future` handler stays on its connection's loop).
    public func wrapped(
        _ respond: @escaping @Sendable (Request, RequestBodyStream?, any EventLoop) async throws -> Response
    ) -> Route.Handler {
        if case .streaming = self {
            return .streaming { request, body in
                try await respond(request, body, MultiThreadedEventLoopGroup.singleton.any())
            }
        }
        return .future { request, eventLoop in
            eventLoop.makeFutureWithTask { try await respond(request, nil, eventLoop) }
        }
    }
}

/// A table of routes, matched in order. `HEAD` falls back to the `GET` route of the same path.
public struct Router: HTTPResponder {
    public private(set) var routes: [Route] = []
    /// The body limit of routes that set none.
    public var defaultMaxBodyBytes: Int

    public init(defaultMaxBodyBytes: Int = HTTPLimits().maxBodyBytes) {
        self.defaultMaxBodyBytes = defaultMaxBodyBytes
    }

    public mutating func add(_ route: Route) {
        routes.append(route)
    }

    /// Adds a route whose handler awaits; it runs in its own task.
    public mutating func add(
        _ method: HTTPMethod,
        _ pattern: String,
        maxBodyBytes: Int? = nil,
        handler: @escaping @Sendable (Request) async throws -> Response
    ) {
        add(Route(method, pattern, maxBodyBytes: maxBodyBytes, handler: .async(handler)))
    }

    /// Adds a route whose handler answers through a future of the connection's event loop.
    public mutating func addFuture(
        _ method: HTTPMethod,
        _ pattern: String,
        maxBodyBytes: Int? = nil,
        handler: @escaping @Sendable (Request, any EventLoop) -> EventLoopFuture<Response>
    ) {
        add(Route(method, pattern, maxBodyBytes: maxBodyBytes, handler: .future(handler)))
    }

    /// Adds a route whose handler reads the body as it arrives, in its own task.
    public mutating func addStreaming(
        _ method: HTTPMethod,
        _ pattern: String,
        maxBodyBytes: Int,
        handler: @escaping @Sendable (Request, RequestBodyStream) async throws -> Response
    ) {
        add(Route(method, pattern, maxBodyBytes: maxBodyBytes, handler: .streaming(handler)))
    }

    /// Adds a route whose handler never waits; it runs inline on the connection's event loop.
    public mutating func addImmediate(
        _ method: HTTPMethod,
        _ pattern: String,
        maxBodyBytes: Int? = nil,
        handler: @escaping @Sendable (Request) throws -> Response
    ) {
        add(Route(method, pattern, maxBodyBytes: maxBodyBytes, handler: .immediate(handler)))
    }

    public func route(_ head: HTTPRequestHead) -> RouteMatch {
        let pathString = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0]
        let path = pathString.split(separator: "/")
        var allowed: [HTTPMethod] = []
        for route in routes {
            guard let parameters = route.match(path) else { continue }
            if route.method == head.method || (head.method == .HEAD && route.method == .GET) {
                return .handler(
                    route.handler,
                    maxBodyBytes: route.maxBodyBytes ?? defaultMaxBodyBytes,
                    parameters: parameters
                )
            }
            allowed.append(route.method)
        }
        if allowed.isEmpty {
            return .failure(.notFound(String(pathString)))
        }
        if allowed.contains(.GET) && !allowed.contains(.HEAD) {
            allowed.append(.HEAD)
        }
        return .failure(.methodNotAllowed(head.method, allowed: allowed))
    }
}
