import NIOCore
import NIOHTTP1

/// An error a client sees as `{"error":{"code":…,"message":…}}` with an HTTP status.
///
/// `code` is stable and machine-readable; `message` is for people and may change.
public struct HTTPError: Error, Sendable, Equatable {
    public var status: HTTPResponseStatus
    public var code: String
    public var message: String
    /// Extra response headers, such as `Allow` on 405.
    public var headers: HTTPHeaders

    public init(_ status: HTTPResponseStatus, code: String, message: String, headers: HTTPHeaders = [:]) {
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
    }

    public static func == (lhs: HTTPError, rhs: HTTPError) -> Bool {
        lhs.status == rhs.status && lhs.code == rhs.code && lhs.message == rhs.message
    }
}

/// An error of another layer that knows the `HTTPError` a client should see for it.
public protocol HTTPErrorConvertible: Error {
    var httpError: HTTPError { get }
}

extension HTTPError {
    /// The error a client sees for `error`: its own, or 500 `internal_error` for one that has none.
    public static func of(_ error: any Error) -> HTTPError? {
        switch error {
        case let error as HTTPError: error
        case let error as any HTTPErrorConvertible: error.httpError
        default: nil
        }
    }

    public static func notFound(_ path: String) -> HTTPError {
        HTTPError(.notFound, code: "route_not_found", message: "No route for \(path)")
    }

    public static func methodNotAllowed(_ method: HTTPMethod, allowed: [HTTPMethod]) -> HTTPError {
        let allow = allowed.map(\.rawValue).joined(separator: ", ")
        return HTTPError(
            .methodNotAllowed,
            code: "method_not_allowed",
            message: "\(method.rawValue) is not allowed here; allowed: \(allow)",
            headers: ["Allow": allow]
        )
    }

    public static func bodyTooLarge(limit: Int) -> HTTPError {
        HTTPError(.payloadTooLarge, code: "body_too_large", message: "The request body exceeds \(limit) bytes")
    }

    public static func badRequest(code: String, message: String) -> HTTPError {
        HTTPError(.badRequest, code: code, message: message)
    }

    public static let internalError = HTTPError(
        .internalServerError,
        code: "internal_error",
        message: "The server failed to handle the request"
    )
}

extension HTTPError {
    /// The JSON error body: `{"error":{"code":…,"message":…}}`.
    public var jsonBody: ByteBuffer {
        var detail = JSONObjectWriter()
        detail.string("code", code)
        detail.string("message", message)
        var envelope = JSONObjectWriter()
        envelope.raw("error", detail.finish())
        return ByteBuffer(bytes: envelope.finish())
    }
}
