import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

extension SwitchboardClient {
    private static let tusHeaders: HTTPHeaders = ["Tus-Resumable": "1.0.0"]

    /// `POST /v1/uploads`: creates an upload of `length` bytes; returns its path (`/v1/uploads/{id}`).
    public func createUpload(length: Int64, metadata: [String: String] = [:]) async throws -> String {
        var headers = Self.tusHeaders
        headers.add(name: "Upload-Length", value: String(length))
        let encoded = metadata.sorted { $0.key < $1.key }.map {
            "\($0.key) \(Data($0.value.utf8).base64EncodedString())"
        }
        if !encoded.isEmpty {
            headers.add(name: "Upload-Metadata", value: encoded.joined(separator: ","))
        }
        let reply = try checked(try await send(.POST, "/v1/uploads", headers: headers))
        guard let location = reply.headers.first(name: "location") else { throw SwitchboardError(reply) }
        return location
    }

    /// `HEAD` on an upload: how many bytes the server holds, and of how many.
    public func uploadOffset(_ path: String) async throws -> (offset: Int64, length: Int64?) {
        let reply = try checked(try await send(.HEAD, path, headers: Self.tusHeaders))
        guard let offset = reply.headers.first(name: "upload-offset").flatMap(Int64.init) else {
            throw SwitchboardError(reply)
        }
        return (offset, reply.headers.first(name: "upload-length").flatMap(Int64.init))
    }

    /// `PATCH`: sends `chunk` at `offset`; returns the new offset.
    public func appendUpload(_ path: String, offset: Int64, chunk: ByteBuffer) async throws -> Int64 {
        var headers = Self.tusHeaders
        headers.add(name: "Upload-Offset", value: String(offset))
        headers.add(name: "Content-Type", value: "application/offset+octet-stream")
        let reply = try checked(try await send(.PATCH, path, headers: headers, body: chunk))
        guard let next = reply.headers.first(name: "upload-offset").flatMap(Int64.init) else {
            throw SwitchboardError(reply)
        }
        return next
    }
}
