import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// A client for Switchboard's HTTP API, used by the CLI and the tests.
public struct SwitchboardClient: Sendable {
    /// Where the server is, such as `http://127.0.0.1:8080`.
    public let baseURL: String
    let http: HTTPClient
    private let timeout: TimeAmount

    public init(baseURL: String, httpClient: HTTPClient = .shared, timeout: TimeAmount = .seconds(30)) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.http = httpClient
        self.timeout = timeout
    }

    /// An answer from the server: status, headers and the whole body.
    public struct Reply: Sendable {
        public var status: HTTPResponseStatus
        public var headers: HTTPHeaders
        public var body: ByteBuffer

        public init(status: HTTPResponseStatus, headers: HTTPHeaders, body: ByteBuffer) {
            self.status = status
            self.headers = headers
            self.body = body
        }

        public var text: String { String(buffer: body) }
    }

    /// Sends one request and reads the whole answer (up to `maxBodyBytes`).
    public func send(
        _ method: HTTPMethod,
        _ path: String,
        headers: HTTPHeaders = [:],
        body: ByteBuffer? = nil,
        maxBodyBytes: Int = 64 << 20
    ) async throws -> Reply {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        request.headers = headers
        if let body {
            request.body = .bytes(body)
        }
        let response = try await http.execute(request, timeout: timeout)
        let bytes = try await response.body.collect(upTo: maxBodyBytes)
        return Reply(status: response.status, headers: response.headers, body: bytes)
    }

    /// `GET /healthz`: whether the process answers.
    public func isHealthy() async throws -> Bool {
        try await send(.GET, "/healthz").status == .ok
    }

    /// `GET /readyz`: whether the node and its store can serve; throws the server's error when not.
    public func readiness() async throws -> Readiness {
        try decode(Readiness.self, from: try await send(.GET, "/readyz"))
    }

    /// `GET /metrics`: the Prometheus text.
    public func metricsText() async throws -> String {
        try checked(try await send(.GET, "/metrics")).text
    }

    /// The body of `/readyz`.
    public struct Readiness: Decodable, Sendable {
        public var status: String
        public var store: String
    }

    func decode<T: Decodable>(_ type: T.Type, from reply: Reply) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(try checked(reply).body.readableBytesView))
    }

    func checked(_ reply: Reply) throws -> Reply {
        guard (200..<300).contains(reply.status.code) else { throw SwitchboardError(reply) }
        return reply
    }
}

/// An error answer from the server: its status and the `code` and `message` of its JSON body.
public struct SwitchboardError: Error, CustomStringConvertible, Sendable {
    public var status: HTTPResponseStatus
    public var code: String
    public var message: String

    init(status: HTTPResponseStatus, code: String, message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    init(_ reply: SwitchboardClient.Reply) {
        struct Envelope: Decodable {
            struct Detail: Decodable {
                var code: String
                var message: String
            }
            var error: Detail
        }
        status = reply.status
        let detail = try? JSONDecoder().decode(Envelope.self, from: Data(reply.body.readableBytesView)).error
        code = detail?.code ?? "http_\(reply.status.code)"
        message = detail?.message ?? reply.text
    }

    public var description: String { "\(status.code) \(code): \(message)" }
}
