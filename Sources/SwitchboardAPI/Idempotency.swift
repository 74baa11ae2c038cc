import Crypto
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import SwitchboardEngine
import SwitchboardStore

/// `Idempotency-Key` on every POST (draft-ietf-httpapi-idempotency-key-header, as Stripe's API does it):
/// the first request runs and its response is kept; a retry of the same request gets that response again
/// with `Idempotent-Replayed: true`; the same key on a different request is a 422, and while the first
/// is still running a 409.
///
/// It wraps the router, so every POST route gets it without knowing. As a `Service` it deletes expired
/// records on a schedule.
public final class Idempotency: HTTPResponder, Service {
    public struct Configuration: Sendable {
        /// How long a key is remembered.
        public var retention: Duration = .seconds(24 * 3600)
        public var purgeInterval: Duration = .seconds(600)

        public init() {}
    }

    private let router: any HTTPResponder
    private let store: any IdempotencyStore
    private let configuration: Configuration
    private let logger: Logger

    public init(
        wrapping router: any HTTPResponder,
        store: any IdempotencyStore,
        configuration: Configuration = Configuration(),
        logger: Logger
    ) {
        self.router = router
        self.store = store
        self.configuration = configuration
        self.logger = logger
    }

    public func route(_ head: HTTPRequestHead) -> RouteMatch {
        let match = router.route(head)
        guard head.method == .POST, let key = head.headers.first(name: "idempotency-key"),
            case .handler(let handler, let maxBodyBytes, let parameters) = match
        else { return match }
        let wrapped = handler.wrapped { request, body, eventLoop in
            try await self.respond(to: request, key: key, with: handler, body: body, on: eventLoop)
        }
        return .handler(wrapped, maxBodyBytes: maxBodyBytes, parameters: parameters)
    }

    private func respond(
        to request: Request,
        key header: String,
        with handler: Route.Handler,
        body: RequestBodyStream?,
        on eventLoop: any EventLoop
    ) async throws -> Response {
        let key = try Self.key(from: header, caller: Caller.required())
        let now = Date().millisecondsSince1970
        let expiry = now + configuration.retention.milliseconds
        switch try await store.claim(
            key,
            fingerprint: Self.fingerprint(request, streamed: body != nil),
            owner: store.processOwner,
            now: now,
            expiresAt: expiry
        ) {
        case .replay(let recorded):
            var response = Response(recorded)
            response.headers.replaceOrAdd(name: "Idempotent-Replayed", value: "true")
            return response
        case .inProgress:
            throw Self.keyInUse
        case .mismatch:
            throw Self.keyReused
        case .started:
            return try await IdempotencyScope.$current.withValue(IdempotencyScope(key: key, expiresAt: expiry)) {
                try await runFirst(request, key: key, with: handler, body: body, expiry: expiry, on: eventLoop)
            }
        }
    }

    /// Runs the request that holds the key and keeps its answer: any answer but a server error, which is
    /// released so that a retry runs again. Handlers that commit their effect in one transaction have
    /// recorded a first answer with it (see `IdempotencyScope`); the final answer replaces it.
    private func runFirst(
        _ request: Request,
        key: IdempotencyKey,
        with handler: Route.Handler,
        body: RequestBodyStream?,
        expiry: Int64,
        on eventLoop: any EventLoop
    ) async throws -> Response {
        let response: Response
        do {
            response = try await handler.respond(to: request, body: body, on: eventLoop)
        } catch let error as HTTPError where error.status.code < 500 {
            response = .error(error)
        } catch {
            try? await store.release(key)
            throw error
        }
        guard response.status.code < 500, let recorded = RecordedResponse(response) else {
            try? await store.release(key)
            return response
        }
        try await store.record(recorded, for: key, expiresAt: expiry)
        return response
    }

    /// The answer while the request holding the key runs.
    public static let keyInUse = HTTPError(
        .conflict,
        code: "idempotency_key_in_use",
        message: "A request with this Idempotency-Key is still being processed; retry later"
    )

    /// The answer to the key on a request other than its first.
    public static let keyReused = HTTPError(
        .unprocessableEntity,
        code: "idempotency_key_reused",
        message: "This Idempotency-Key was used with a different request"
    )

    /// The key of `principal` (keys are per caller), without the quotes of its structured-field form;
    /// 1 to 255 characters.
    public static func key(from header: String, caller: Caller) throws -> IdempotencyKey {
        var key = Substring(header)
        if key.count >= 2, key.first == "\"", key.last == "\"" {
            key = key.dropFirst().dropLast()
        }
        guard (1...255).contains(key.count) else {
            throw HTTPError.badRequest(
                code: "idempotency_key_invalid",
                message: "Idempotency-Key must be 1 to 255 characters"
            )
        }
        return IdempotencyKey(principal: caller.principal.map { "sub:\($0.subject)" } ?? "anonymous", key: String(key))
    }

    /// What makes two requests the same: method, target, content type and body. A streamed body is not
    /// read ahead: its length and the `Upload-*` headers that describe it stand in for it.
    private static func fingerprint(_ request: Request, streamed: Bool) -> String {
        let described = streamed ? ["content-type", "content-length"] : ["content-type"]
        var hash = SHA256()
        hash.update(data: Data("\(request.method.rawValue) \(request.head.uri)\n".utf8))
        for (name, value) in request.head.headers
        where described.contains(name.lowercased()) || (streamed && name.lowercased().hasPrefix("upload-")) {
            hash.update(data: Data("\(name.lowercased()): \(value)\n".utf8))
        }
        hash.update(data: Data([0]))
        hash.update(data: Data(request.body.readableBytesView))
        return hash.finalize().map { String(format: "%02x", $0) }.joined()
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                let purged = try await store.purgeIdempotencyKeys(now: Date().millisecondsSince1970)
                if purged > 0 {
                    logger.info("Expired idempotency keys deleted", metadata: ["count": "\(purged)"])
                }
            } catch {
                logger.error("Idempotency key purge failed", metadata: ["error": "\(error)"])
            }
            let interval = configuration.purgeInterval
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }
}

/// The idempotency key of the request a handler is serving. A handler whose effect is one store
/// transaction hands `receipt` to the store, so the response is recorded in that same transaction.
public struct IdempotencyScope: Sendable {
    public var key: IdempotencyKey
    public var expiresAt: Int64

    @TaskLocal public static var current: IdempotencyScope?

    /// A receipt that records the response `respond` makes of the committed effect.
    public func receipt<Effect>(_ respond: @escaping @Sendable (Effect) -> Response) -> IdempotencyReceipt<Effect> {
        IdempotencyReceipt(key: key, expiresAt: expiresAt) { effect in
            let response = respond(effect)
            return RecordedResponse(response)
                ?? RecordedResponse(status: Int(response.status.code), headers: [], body: Data())
        }
    }
}

extension RecordedResponse {
    /// The response as kept; `nil` for a streamed body, which cannot be replayed.
    init?(_ response: Response) {
        guard case .buffer(let body) = response.body else { return nil }
        self.init(
            status: Int(response.status.code),
            headers: response.headers.map { [$0.name, $0.value] },
            body: Data(body.readableBytesView)
        )
    }
}

extension Response {
    init(_ recorded: RecordedResponse) {
        var headers = HTTPHeaders()
        for pair in recorded.headers where pair.count == 2 {
            headers.add(name: pair[0], value: pair[1])
        }
        self.init(
            status: HTTPResponseStatus(statusCode: recorded.status),
            headers: headers,
            body: .buffer(ByteBuffer(bytes: recorded.body))
        )
    }
}
