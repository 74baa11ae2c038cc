import Foundation
import JWTKit
import NIOCore
import NIOHTTP1
import NIOPosix
import SwitchboardEngine

/// Stateless authentication with JWTs (jwt-kit): with keys configured, every request but the operational
/// ones (`/healthz`, `/readyz`, `/metrics`, `/openapi.json`) and the console page (`/console`) needs `Authorization: Bearer <JWT>`, or for
/// the two routes browsers cannot set headers on (SSE and WebSocket), `?access_token=`. HS256, RS256 and
/// ES256 tokens are accepted, from a secret, a PEM public key or a JWKS file; `exp` is required and
/// `nbf`, `iss` and `aud` are checked. The verified claims become the request's `Principal`, which every
/// handler asks before acting.
///
/// It wraps the router, so no route can be forgotten.
public final class Authentication: HTTPResponder {
    public struct Configuration: Sendable {
        /// An HS256 secret.
        public var secret: String?
        /// A PEM public key (RSA for RS256, P-256 for ES256).
        public var publicKeyPEM: String?
        /// A JWKS document.
        public var jwks: String?
        /// The `iss` tokens must carry, when set.
        public var issuer: String?
        /// An `aud` tokens must include, when set.
        public var audience: String?

        public init() {}

        public var isEnabled: Bool { secret != nil || publicKeyPEM != nil || jwks != nil }
    }

    /// Paths open without a token: probes, metrics and the API's description.
    /// The console page holds no data: what it shows, it reads with its user's token.
    static let openPaths: Set<Substring> = ["/healthz", "/readyz", "/metrics", "/openapi.json", "/console"]

    private let router: any HTTPResponder
    private let keys: JWTKeyCollection
    private let configuration: Configuration

    /// - Throws: `AuthenticationSetupError` when a key cannot be read.
    public init(wrapping router: any HTTPResponder, configuration: Configuration) async throws {
        self.router = router
        self.configuration = configuration
        self.keys = try await Self.keys(configuration)
    }

    public func route(_ head: HTTPRequestHead) -> RouteMatch {
        let match = router.route(head)
        guard case .handler(let handler, let maxBodyBytes, let parameters) = match,
            !Self.openPaths.contains(Request(head: head).path)
        else { return match }
        let wrapped = handler.wrapped { request, body, eventLoop in
            let principal = try await self.principal(for: request.head)
            return try await Caller.$current.withValue(.principal(principal)) {
                try await handler.respond(to: request, body: body, on: eventLoop)
            }
        }
        return .handler(wrapped, maxBodyBytes: maxBodyBytes, parameters: parameters)
    }

    /// The principal of a request's token; throws 401 when it has none or a bad one.
    public func principal(for head: HTTPRequestHead) async throws -> Principal {
        try await principal(bearer: Self.token(in: head))
    }

    /// The principal of a bearer token (any transport's); throws 401 when there is none or a bad one.
    public func principal(bearer token: String?) async throws -> Principal {
        guard let token else {
            throw Self.unauthorized("A bearer token is required (Authorization: Bearer <JWT>)")
        }
        let claims: AccessClaims
        do {
            claims = try await keys.verify(token, as: AccessClaims.self)
        } catch {
            throw Self.unauthorized("The token is not valid: \(Self.reason(error))")
        }
        if let issuer = configuration.issuer, claims.iss?.value != issuer {
            throw Self.unauthorized("The token's issuer is not \(issuer)")
        }
        if let audience = configuration.audience, !(claims.aud?.value.contains(audience) ?? false) {
            throw Self.unauthorized("The token is not meant for audience \(audience)")
        }
        return Principal(claims)
    }

    /// A development token signed with an HS256 `secret`, allowing what the patterns say for `ttl`.
    public static func mint(
        secret: String,
        subject: String,
        publish: [String],
        subscribe: [String],
        queues: [String],
        rooms: [String] = [],
        admin: Bool,
        ttl: Duration,
        issuer: String? = nil,
        audience: String? = nil
    ) async throws -> String {
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        let claims = AccessClaims(
            sub: SubjectClaim(value: subject),
            exp: ExpirationClaim(value: Date().addingTimeInterval(Double(ttl.components.seconds))),
            iss: issuer.map { IssuerClaim(value: $0) },
            aud: audience.map { AudienceClaim(value: [$0]) },
            publish: publish,
            subscribe: subscribe,
            queues: queues,
            rooms: rooms.isEmpty ? nil : rooms,
            admin: admin ? true : nil
        )
        return try await keys.sign(claims)
    }

    /// The bearer token, or the `access_token` query parameter of a GET (for EventSource and WebSocket).
    static func token(in head: HTTPRequestHead) -> String? {
        if let header = head.headers.first(name: "authorization") {
            return bearerToken(inAuthorization: header)
        }
        guard head.method == .GET else { return nil }
        return Request(head: head).query["access_token"]
    }

    /// The token of an `Authorization: Bearer <token>` value.
    public static func bearerToken(inAuthorization value: String) -> String? {
        let parts = value.split(separator: " ", maxSplits: 1)
        return parts.count == 2 && parts[0].lowercased() == "bearer" ? String(parts[1]) : nil
    }

    static func unauthorized(_ message: String) -> HTTPError {
        HTTPError(.unauthorized, code: "unauthorized", message: message, headers: ["WWW-Authenticate": "Bearer"])
    }

    private static func reason(_ error: any Error) -> String {
        if let error = error as? JWTError {
            return error.reason ?? error.errorType.description
        }
        return "\(error)"
    }

    private static func keys(_ configuration: Configuration) async throws -> JWTKeyCollection {
        let keys = JWTKeyCollection()
        if let secret = configuration.secret {
            await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        }
        if let pem = configuration.publicKeyPEM {
            if let rsa = try? Insecure.RSA.PublicKey(pem: pem) {
                await keys.add(rsa: rsa, digestAlgorithm: .sha256)
            } else if let ecdsa = try? ES256PublicKey(pem: pem) {
                await keys.add(ecdsa: ecdsa)
            } else {
                throw AuthenticationSetupError(message: "the public key is neither an RSA nor a P-256 PEM key")
            }
        }
        if let jwks = configuration.jwks {
            do {
                try await keys.add(jwksJSON: jwks)
            } catch {
                throw AuthenticationSetupError(message: "the JWKS cannot be read: \(error)")
            }
        }
        return keys
    }
}

/// A key setting that cannot be used.
public struct AuthenticationSetupError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// The claims Switchboard reads from a token: who it is, when it expires, and what it may do —
/// `publish` and `subscribe` topic patterns, `queues` patterns, signaling `rooms` patterns, and `admin`
/// for everything.
struct AccessClaims: JWTPayload {
    var sub: SubjectClaim?
    var exp: ExpirationClaim
    var nbf: NotBeforeClaim?
    var iss: IssuerClaim?
    var aud: AudienceClaim?
    var publish: [String]?
    var subscribe: [String]?
    var queues: [String]?
    var rooms: [String]?
    var admin: Bool?

    func verify(using algorithm: some JWTAlgorithm) async throws {
        try exp.verifyNotExpired()
        try nbf?.verifyNotBefore()
    }
}

/// Who is making a request and what they may do, from a verified token.
public struct Principal: Sendable {
    public var subject: String
    public var expiresAt: Date
    var publish: [TopicPattern]
    var subscribe: [TopicPattern]
    var queues: [TopicPattern]
    var rooms: [TopicPattern]
    /// May do anything (the `admin` claim).
    var admin: Bool

    /// What a request wants to do.
    public enum Action: Sendable {
        case publish(topic: String)
        case subscribe(topic: String)
        case useQueue(String)
        /// Joining a WebRTC signaling room.
        case joinRoom(String)
        /// Uploads and anything else any authenticated caller may do.
        case authenticated
        /// What only an administrator may do: see every upload, open the console.
        case administer
    }

    init(_ claims: AccessClaims) {
        subject = claims.sub?.value ?? ""
        expiresAt = claims.exp.value
        publish = (claims.publish ?? []).map(TopicPattern.init)
        subscribe = (claims.subscribe ?? []).map(TopicPattern.init)
        queues = (claims.queues ?? []).map(TopicPattern.init)
        rooms = (claims.rooms ?? []).map(TopicPattern.init)
        admin = claims.admin ?? false
    }

    public func may(_ action: Action) -> Bool {
        if admin { return true }
        switch action {
        case .publish(let topic): return publish.contains { $0.matches(topic) }
        case .subscribe(let topic): return subscribe.contains { $0.matches(topic) }
        case .useQueue(let queue): return queues.contains { $0.matches(queue) }
        case .joinRoom(let room): return rooms.contains { $0.matches(room) }
        case .authenticated: return true
        case .administer: return false
        }
    }
}

/// Who is asking, as every feature sees it: sessions (WebSocket, signaling, gRPC calls) hold theirs, and
/// HTTP routes find theirs in `Caller.current`, which `Authentication` or `OpenAccess` establishes for
/// every route. There is no default: a check that finds no caller refuses (authorization fails closed).
public enum Caller: Sendable {
    /// Authentication is off, so every request may do anything: chosen by the server's assembly only.
    case anyone
    /// The holder of a verified token.
    case principal(Principal)

    /// The caller of the HTTP request being handled.
    @TaskLocal public static var current: Caller?

    /// The caller of a request head: `anyone` while authentication is off (`nil`), else its token's
    /// principal; throws 401 for a missing or bad token.
    public static func of(_ head: HTTPRequestHead, authentication: Authentication?) async throws -> Caller {
        guard let authentication else { return .anyone }
        return .principal(try await authentication.principal(for: head))
    }

    /// The caller of a bearer token, as `of(_:authentication:)`.
    public static func of(bearer token: String?, authentication: Authentication?) async throws -> Caller {
        guard let authentication else { return .anyone }
        return .principal(try await authentication.principal(bearer: token))
    }

    /// The current caller; throws 403 when none was established (a route outside the access layer).
    public static func required() throws -> Caller {
        guard let current else {
            throw HTTPError(.forbidden, code: "forbidden", message: "No caller is established for this request")
        }
        return current
    }

    /// Throws 403 unless the current caller may do `action`; with no caller, always.
    public static func authorize(_ action: Principal.Action) throws {
        try required().authorize(action)
    }

    public func may(_ action: Principal.Action) -> Bool {
        switch self {
        case .anyone: true
        case .principal(let principal): principal.may(action)
        }
    }

    /// Throws 403 unless this caller may do `action`.
    public func authorize(_ action: Principal.Action) throws {
        guard !may(action) else { return }
        throw HTTPError(.forbidden, code: "forbidden", message: "The token does not allow \(action.description)")
    }

    /// The verified token's principal; `nil` for `anyone`.
    public var principal: Principal? {
        if case .principal(let principal) = self { principal } else { nil }
    }
}

/// The access layer while authentication is off: it establishes `Caller.anyone` for every route, so that
/// no check runs without a caller. It adds no task to any route.
public struct OpenAccess: HTTPResponder {
    private let router: any HTTPResponder

    public init(wrapping router: any HTTPResponder) {
        self.router = router
    }

    public func route(_ head: HTTPRequestHead) -> RouteMatch {
        let match = router.route(head)
        guard case .handler(let handler, let maxBodyBytes, let parameters) = match else { return match }
        return .handler(
            handler.binding(Caller.$current, to: .anyone),
            maxBodyBytes: maxBodyBytes,
            parameters: parameters
        )
    }
}

extension Principal.Action: CustomStringConvertible {
    public var description: String {
        switch self {
        case .publish(let topic): "publishing to \(topic)"
        case .subscribe(let topic): "subscribing to \(topic)"
        case .useQueue(let queue): "using queue \(queue)"
        case .joinRoom(let room): "joining room \(room)"
        case .authenticated: "this"
        case .administer: "administration (the admin claim)"
        }
    }
}

/// A topic or queue pattern from a token: `*` matches any run of characters, as in `chat.*`.
struct TopicPattern: Sendable {
    let parts: [Substring]

    init(_ pattern: String) {
        parts = pattern.split(separator: "*", omittingEmptySubsequences: false)
    }

    func matches(_ name: String) -> Bool {
        guard parts.count > 1 else { return name == parts[0] }
        var rest = Substring(name)
        guard rest.hasPrefix(parts[0]) else { return false }
        rest = rest.dropFirst(parts[0].count)
        for (index, part) in parts.dropFirst().enumerated() {
            let isLast = index == parts.count - 2
            if isLast {
                return rest.hasSuffix(part) && rest.count >= part.count
            }
            guard let found = rest.range(of: part) else { return false }
            rest = rest[found.upperBound...]
        }
        return true
    }
}
