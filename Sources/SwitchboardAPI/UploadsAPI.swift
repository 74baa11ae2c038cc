import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import SwitchboardEngine
import SwitchboardStore
import SwitchboardUploads

/// tus 1.0 at `/v1/uploads`: core, creation, creation-with-upload, creation-defer-length, termination,
/// checksum, expiration and concatenation; and `GET /v1/uploads/{id}/content` with `Range`.
public struct UploadsAPI: Sendable {
    static let version = "1.0.0"
    static let extensions =
        "creation,creation-with-upload,creation-defer-length,termination,checksum,expiration,concatenation"
    static let bodyType = "application/offset+octet-stream"

    let uploads: Uploads

    public init(uploads: Uploads) {
        self.uploads = uploads
    }

    public func register(in router: inout Router) {
        let maxBody = Int(clamping: uploads.configuration.maxSize)
        router.addImmediate(.OPTIONS, "/v1/uploads") { _ in
            var response = Response(status: .noContent)
            response.headers.add(name: "Tus-Version", value: Self.version)
            response.headers.add(name: "Tus-Extension", value: Self.extensions)
            response.headers.add(name: "Tus-Max-Size", value: String(uploads.configuration.maxSize))
            let algorithms = UploadChecksum.Algorithm.allCases.map(\.rawValue).joined(separator: ",")
            response.headers.add(name: "Tus-Checksum-Algorithm", value: algorithms)
            return response
        }
        router.addStreaming(.POST, "/v1/uploads", maxBodyBytes: maxBody) { request, body in
            try await Self.tus(request) { try await create(request, body: body) }
        }
        router.add(.HEAD, "/v1/uploads/{id}") { request in
            try await Self.tus(request) { try await status(request) }
        }
        router.addStreaming(.PATCH, "/v1/uploads/{id}", maxBodyBytes: maxBody) { request, body in
            try await Self.tus(request) { try await patch(request, body: body) }
        }
        router.add(.DELETE, "/v1/uploads/{id}") { request in
            try await Self.tus(request) {
                try await Self.translating { try await uploads.terminate(id: Self.id(of: request)) }
                return Response(status: .noContent)
            }
        }
        router.add(.GET, "/v1/uploads") { _ in
            try Caller.authorize(.administer)
            return try await Self.translating { try await Self.list(uploads.inProgress(limit: 100)) }
        }
        router.add(.GET, "/v1/uploads/{id}/content") { request in
            try await content(request)
        }
    }

    /// `GET /v1/uploads`: the uploads being written, with their progress (for administrators).
    private static func list(_ uploads: [Upload]) -> Response {
        var body = JSONObjectWriter(capacity: 128 * uploads.count + 16)
        body.raw(
            "uploads",
            JSONObjectWriter.array(uploads) { item, upload in
                item.string("id", upload.id)
                item.number("offset", upload.offset)
                item.number("length", upload.length)
                item.string("metadata", upload.metadata)
                item.number("createdAt", upload.createdAt)
                item.number("expiresAt", upload.expiresAt)
            }
        )
        return .json(ByteBuffer(bytes: body.finish()))
    }

    /// `POST /v1/uploads`: 201 with `Location`; with a body (creation-with-upload) its bytes are taken at
    /// once and `Upload-Offset` says how many.
    private func create(_ request: Request, body: RequestBodyStream) async throws -> Response {
        let headers = request.head.headers
        let metadata = headers.first(name: "upload-metadata") ?? ""
        let concat = headers.first(name: "upload-concat")
        var upload: Upload
        if let concat, concat.hasPrefix("final;") {
            let parts = concat.dropFirst("final;".count).split(separator: " ").compactMap {
                $0.split(separator: "/").last
            }
            upload = try await Self.translating {
                try await uploads.create(length: nil, metadata: metadata, final: parts.map(String.init))
            }
        } else {
            guard concat == nil || concat == "partial" else {
                throw HTTPError.badRequest(
                    code: "invalid_upload_concat",
                    message: "Upload-Concat is partial or final;URLS"
                )
            }
            let length = try Self.length(headers)
            upload = try await Self.translating {
                try await uploads.create(length: length, metadata: metadata, partial: concat == "partial")
            }
        }
        if headers.first(name: "content-type") == Self.bodyType {
            do {
                upload = try await uploads.append(
                    id: upload.id,
                    at: 0,
                    declaredLength: nil,
                    checksum: try Self.checksum(headers),
                    body: body
                )
            } catch UploadError.interrupted {
                throw CancellationError()
            } catch {
                // The upload exists; the client learns from Upload-Offset how much of the body counted.
                upload = (try? await uploads.upload(id: upload.id)) ?? upload
            }
        }
        var response = Response(status: .created)
        response.headers.add(name: "Location", value: "/v1/uploads/\(upload.id)")
        response.headers.add(name: "Upload-Offset", value: String(upload.offset))
        Self.addExpiry(of: upload, to: &response.headers)
        return response
    }

    /// `HEAD /v1/uploads/{id}`: the offset, the length (or that it is deferred), metadata, concatenation
    /// and expiry, never cached.
    private func status(_ request: Request) async throws -> Response {
        let upload = try await Self.translating { try await uploads.upload(id: Self.id(of: request)) }
        var response = Response(status: .ok)
        response.headers.add(name: "Cache-Control", value: "no-store")
        response.headers.add(name: "Upload-Offset", value: String(upload.offset))
        if let length = upload.length {
            response.headers.add(name: "Upload-Length", value: String(length))
        } else {
            response.headers.add(name: "Upload-Defer-Length", value: "1")
        }
        if !upload.metadata.isEmpty {
            response.headers.add(name: "Upload-Metadata", value: upload.metadata)
        }
        switch upload.concatenation {
        case .partial: response.headers.add(name: "Upload-Concat", value: "partial")
        case .final(let parts):
            response.headers.add(
                name: "Upload-Concat",
                value: "final;" + parts.map { "/v1/uploads/\($0)" }.joined(separator: " ")
            )
        case nil: break
        }
        Self.addExpiry(of: upload, to: &response.headers)
        return response
    }

    /// `PATCH /v1/uploads/{id}`: appends the body at `Upload-Offset`; 204 with the new offset.
    private func patch(_ request: Request, body: RequestBodyStream) async throws -> Response {
        let headers = request.head.headers
        guard headers.first(name: "content-type") == Self.bodyType else {
            throw HTTPError(
                .unsupportedMediaType,
                code: "wrong_content_type",
                message: "PATCH bodies must be \(Self.bodyType)"
            )
        }
        guard let offset = headers.first(name: "upload-offset").flatMap(Int64.init), offset >= 0 else {
            throw HTTPError.badRequest(code: "invalid_upload_offset", message: "Upload-Offset must be a byte offset")
        }
        let declared = try headers.first(name: "upload-length").map { text in
            guard let length = Int64(text), length >= 0 else {
                throw HTTPError.badRequest(code: "invalid_upload_length", message: "Upload-Length must be a size")
            }
            return length
        }
        let checksum = try Self.checksum(headers)
        let upload = try await Self.translating {
            try await uploads.append(
                id: Self.id(of: request),
                at: offset,
                declaredLength: declared,
                checksum: checksum,
                body: body
            )
        }
        var response = Response(status: .noContent)
        response.headers.add(name: "Upload-Offset", value: String(upload.offset))
        Self.addExpiry(of: upload, to: &response.headers)
        return response
    }

    /// `type/subtype` of RFC 9110's token characters, without parameters; `nil` for anything else.
    static func mediaType(_ text: String?) -> String? {
        guard let text, text.utf8.count <= 127 else { return nil }
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        let token = { (part: Substring) in
            !part.isEmpty
                && part.utf8.allSatisfy { byte in
                    byte > 0x20 && byte < 0x7F && !"()<>@,;:\\\"/[]?={}".utf8.contains(byte)
                }
        }
        return parts.count == 2 && parts.allSatisfy(token) ? text.lowercased() : nil
    }

    /// `GET /v1/uploads/{id}/content`: the finished file, whole or one `Range`, streamed from disk.
    private func content(_ request: Request) async throws -> Response {
        let upload = try await Self.translating { try await uploads.upload(id: Self.id(of: request)) }
        guard upload.isComplete, let length = upload.length else {
            throw HTTPError(.conflict, code: "upload_incomplete", message: "The upload is not finished")
        }
        let metadata = UploadMetadata(header: upload.metadata)
        var response = Response(status: .ok)
        // The uploader names the type: it is sent only when it is a plain media type, never sniffed, and
        // the file cannot run script in the API's origin whatever it claims to be.
        response.headers.add(
            name: "Content-Type",
            value: Self.mediaType(metadata?["filetype"]) ?? "application/octet-stream"
        )
        response.headers.add(name: "X-Content-Type-Options", value: "nosniff")
        response.headers.add(name: "Content-Security-Policy", value: "sandbox")
        response.headers.add(name: "Accept-Ranges", value: "bytes")
        var range = 0..<length
        if let header = request.head.headers.first(name: "range") {
            guard let asked = ByteRange(header: header, length: length) else {
                var error = HTTPError(
                    .rangeNotSatisfiable,
                    code: "range_not_satisfiable",
                    message: "The range is outside the \(length) bytes"
                )
                error.headers.add(name: "Content-Range", value: "bytes */\(length)")
                throw error
            }
            range = asked.range
            response.status = .partialContent
            response.headers.add(
                name: "Content-Range",
                value: "bytes \(range.lowerBound)-\(range.upperBound - 1)/\(length)"
            )
        }
        response.headers.add(name: "Content-Length", value: String(range.count))
        let path = uploads.path(of: upload.id)
        let sent = range
        response.body = .stream { writer in
            let fileIO = NonBlockingFileIO(threadPool: .singleton)
            try await fileIO.withFileHandle(path: path, mode: .read) { file in
                var position = sent.lowerBound
                while position < sent.upperBound {
                    let count = Int(min(1 << 16, sent.upperBound - position))
                    let chunk = try await fileIO.read(
                        fileHandle: file,
                        fromOffset: position,
                        byteCount: count,
                        allocator: ByteBufferAllocator()
                    )
                    guard chunk.readableBytes > 0 else { break }
                    try await writer.write(chunk)
                    position += Int64(chunk.readableBytes)
                }
            }
        }
        return response
    }

    /// Checks `Tus-Resumable` and marks the answer (errors included) with it.
    private static func tus(_ request: Request, _ respond: () async throws -> Response) async throws -> Response {
        do {
            guard request.head.headers.first(name: "tus-resumable") == version else {
                var error = HTTPError(
                    .preconditionFailed,
                    code: "tus_version_unsupported",
                    message: "Send Tus-Resumable: \(version)"
                )
                error.headers.add(name: "Tus-Version", value: version)
                throw error
            }
            var response = try await respond()
            response.headers.add(name: "Tus-Resumable", value: version)
            return response
        } catch var error as HTTPError {
            error.headers.add(name: "Tus-Resumable", value: version)
            throw error
        }
    }

    private static func length(_ headers: HTTPHeaders) throws -> Int64? {
        switch (headers.first(name: "upload-length"), headers.first(name: "upload-defer-length")) {
        case (let text?, nil):
            guard let length = Int64(text), length >= 0 else {
                throw HTTPError.badRequest(code: "invalid_upload_length", message: "Upload-Length must be a size")
            }
            return length
        case (nil, "1"):
            return nil
        default:
            throw HTTPError.badRequest(
                code: "invalid_upload_length",
                message: "Send either Upload-Length or Upload-Defer-Length: 1"
            )
        }
    }

    private static func checksum(_ headers: HTTPHeaders) throws -> UploadChecksum? {
        guard let header = headers.first(name: "upload-checksum") else { return nil }
        do {
            return try UploadChecksum(header: header)
        } catch {
            throw HTTPError.badRequest(
                code: "invalid_upload_checksum",
                message: "Upload-Checksum is ALGORITHM BASE64 with sha1, sha256 or md5"
            )
        }
    }

    private static func addExpiry(of upload: Upload, to headers: inout HTTPHeaders) {
        guard !upload.isComplete else { return }
        let date = Date(timeIntervalSince1970: Double(upload.expiresAt) / 1000)
        let format = DateFormatter()
        format.locale = Locale(identifier: "en_US_POSIX")
        format.timeZone = TimeZone(identifier: "GMT")
        format.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"  // RFC 9110 §5.6.7 IMF-fixdate
        headers.add(name: "Upload-Expires", value: format.string(from: date))
    }

    private static func id(of request: Request) throws -> String {
        let id = request.parameters["id"] ?? ""
        guard UUID(uuidString: id) != nil else {
            throw HTTPError(.notFound, code: "upload_not_found", message: "No upload \(id)")
        }
        return id
    }

    /// Runs an upload operation, turning its refusal into the tus status.
    private static func translating<T>(_ operation: () async throws -> T) async throws -> T {
        do {
            return try await operation()
        } catch let error as UploadError {
            throw httpError(error)
        }
    }

    static func httpError(_ error: UploadError) -> any Error {
        switch error {
        case .notFound: HTTPError(.notFound, code: "upload_not_found", message: "No such upload")
        case .gone: HTTPError(.gone, code: "upload_expired", message: "The upload expired or was removed")
        case .offsetMismatch(let offset):
            HTTPError(.conflict, code: "offset_mismatch", message: "The upload is at offset \(offset)")
        case .locked:
            HTTPError(.locked, code: "upload_locked", message: "Another request is writing to this upload")
        case .tooLarge(let limit):
            HTTPError(.payloadTooLarge, code: "upload_too_large", message: "Uploads may be at most \(limit) bytes")
        case .exceedsLength(let length):
            HTTPError(.payloadTooLarge, code: "upload_too_large", message: "The upload is \(length) bytes long")
        case .checksumMismatch:
            HTTPError(
                HTTPResponseStatus(statusCode: 460, reasonPhrase: "Checksum Mismatch"),
                code: "checksum_mismatch",
                message: "The body does not match Upload-Checksum; it was discarded"
            )
        case .finalUpload:
            HTTPError(.forbidden, code: "upload_final", message: "A concatenated upload cannot be patched")
        case .invalid(let message): HTTPError.badRequest(code: "invalid_upload", message: message)
        case .interrupted: CancellationError()
        case .failed(let message): UploadFailure(message: message)
        }
    }
}

/// A store or file failure behind an upload; answered as a 500.
struct UploadFailure: Error {
    var message: String
}

/// One `Range: bytes=…` of RFC 9110 §14.1.2 (first-last, first-, or -suffix).
struct ByteRange {
    let range: Range<Int64>

    /// `nil` when the header is malformed or the range lies outside `length` bytes.
    init?(header: String, length: Int64) {
        guard header.hasPrefix("bytes="), !header.contains(",") else { return nil }
        let spec = header.dropFirst("bytes=".count).split(separator: "-", omittingEmptySubsequences: false)
        guard spec.count == 2 else { return nil }
        switch (Int64(spec[0]), Int64(spec[1])) {
        case (let first?, let last?) where first <= last && first < length:
            range = first..<(last < length ? last + 1 : length)
        case (let first?, nil) where spec[1].isEmpty && first < length:
            range = first..<length
        case (nil, let suffix?) where spec[0].isEmpty && suffix > 0:
            range = max(0, length - suffix)..<length
        default:
            return nil
        }
    }
}
