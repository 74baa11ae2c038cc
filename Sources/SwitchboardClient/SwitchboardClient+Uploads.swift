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

    /// `PATCH`: sends `count` bytes of `file` from `offset`, streamed from disk as they are read;
    /// returns the server's new offset. `sent` hears how far the body has been read out so far.
    public func appendUpload(
        _ path: String,
        offset: Int64,
        from file: String,
        count: Int64,
        sent: @escaping @Sendable (Int64) -> Void = { _ in }
    ) async throws -> Int64 {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = .PATCH
        request.headers = Self.tusHeaders
        request.headers.add(name: "Upload-Offset", value: String(offset))
        request.headers.add(name: "Content-Type", value: "application/offset+octet-stream")
        request.body = .stream(
            FileChunks(path: file, offset: offset, count: count, sent: sent),
            length: .known(count)
        )
        let response = try await http.execute(request, timeout: .minutes(10))
        let reply = try checked(
            Reply(
                status: response.status,
                headers: response.headers,
                body: try await response.body.collect(upTo: 1 << 20)
            )
        )
        guard let next = reply.headers.first(name: "upload-offset").flatMap(Int64.init) else {
            throw SwitchboardError(reply)
        }
        return next
    }
}

/// `count` bytes of a file from `offset`, read in pieces of 4 MiB as the request body asks for them.
struct FileChunks: AsyncSequence, Sendable {
    let path: String
    let offset: Int64
    let count: Int64
    /// Called with the file offset reached after each piece.
    let sent: @Sendable (Int64) -> Void

    struct AsyncIterator: AsyncIteratorProtocol {
        let file: FileHandle?
        var position: Int64
        let end: Int64
        let sent: @Sendable (Int64) -> Void

        mutating func next() async throws -> ByteBuffer? {
            guard position < end, let file else { return nil }
            let piece = try file.read(upToCount: Int(Swift.min(end - position, 4 << 20))) ?? Data()
            guard !piece.isEmpty else { return nil }
            position += Int64(piece.count)
            sent(position)
            return ByteBuffer(bytes: piece)
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        let file = FileHandle(forReadingAtPath: path)
        try? file?.seek(toOffset: UInt64(offset))
        return AsyncIterator(file: file, position: offset, end: offset + count, sent: sent)
    }
}
