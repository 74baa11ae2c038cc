import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import SwitchboardEngine

/// `sleep`: waits `{"seconds": S}` (0 to 3600) and answers `{"slept": S}`. A demo and a test aid.
public struct SleepHandler: JobHandler {
    public let type = "sleep"

    public init() {}

    public func validate(_ input: JSONValue) throws {
        guard let seconds = input["seconds"]?.numberValue, (0...3600).contains(seconds) else {
            throw JobInputError(#"sleep takes {"seconds": S} with S from 0 to 3600"#)
        }
    }

    public func run(_ input: JSONValue) async throws -> JSONValue {
        let seconds = input["seconds"]?.numberValue ?? 0
        try await Task.sleep(for: .seconds(seconds))
        return .object(["slept": .number(seconds)])
    }
}

/// `sha256`: the SHA-256 of `{"data": "text"}`, `{"base64": "…"}` or a finished upload
/// (`{"upload": "id"}`, read in chunks), computed on the worker pool, as `{"sha256": hex, "bytes": N}`.
public struct SHA256Handler: JobHandler {
    public let type = "sha256"
    let workers: WorkerPool
    /// Where uploads keep their bytes, one file per upload id.
    let uploadsDirectory: String?

    public init(workers: WorkerPool, uploadsDirectory: String? = nil) {
        self.workers = workers
        self.uploadsDirectory = uploadsDirectory
    }

    public func validate(_ input: JSONValue) throws {
        _ = try source(of: input)
    }

    public func run(_ input: JSONValue) async throws -> JSONValue {
        let source = try source(of: input)
        let (digest, count) = try await workers.run {
            var hash = SHA256()
            var count = 0
            switch source {
            case .bytes(let bytes):
                hash.update(data: bytes)
                count = bytes.count
            case .file(let path):
                guard let file = FileHandle(forReadingAtPath: path) else {
                    throw PermanentJobFailure("The upload's file is gone")
                }
                defer { try? file.close() }
                while let chunk = try file.read(upToCount: 1 << 20), !chunk.isEmpty {
                    hash.update(data: chunk)
                    count += chunk.count
                }
            }
            return (hash.finalize().map { String(format: "%02x", $0) }.joined(), count)
        }
        return .object(["sha256": .string(digest), "bytes": .number(Double(count))])
    }

    private enum Source {
        case bytes(Data)
        case file(String)
    }

    private func source(of input: JSONValue) throws -> Source {
        if let text = input["data"]?.stringValue {
            return .bytes(Data(text.utf8))
        }
        if let encoded = input["base64"]?.stringValue, let bytes = Data(base64Encoded: encoded) {
            return .bytes(bytes)
        }
        if let id = input["upload"]?.stringValue, UUID(uuidString: id) != nil, let uploadsDirectory {
            return .file((uploadsDirectory as NSString).appendingPathComponent(id))
        }
        throw JobInputError(#"sha256 takes {"data": "text"}, {"base64": "…"} or {"upload": "id"}"#)
    }
}

/// `http.request`: a webhook call. Input `{"url", "method" = "POST", "headers": {…}, "body": text or
/// JSON, "timeoutSeconds" = 10}`; answers `{"status", "body"}`. A 5xx answer or a network error fails
/// the attempt so it is retried; any other 4xx fails the job for good.
public struct WebhookHandler: JobHandler {
    public let type = "http.request"
    let client: HTTPClient

    public init(client: HTTPClient = .shared) {
        self.client = client
    }

    public func validate(_ input: JSONValue) throws {
        _ = try request(from: input)
    }

    public func run(_ input: JSONValue) async throws -> JSONValue {
        let (request, timeout) = try request(from: input)
        let response = try await client.execute(request, timeout: timeout)
        let body = try await response.body.collect(upTo: 1 << 20)
        let status = Int(response.status.code)
        if status >= 500 || status == 429 {
            throw WebhookError(status: status)
        }
        guard status < 400 else {
            throw PermanentJobFailure("\(request.url) answered \(status)")
        }
        return .object(["status": .number(Double(status)), "body": .string(String(buffer: body))])
    }

    private func request(from input: JSONValue) throws -> (HTTPClientRequest, TimeAmount) {
        guard let url = input["url"]?.stringValue, let parsed = URL(string: url),
            parsed.scheme == "http" || parsed.scheme == "https", parsed.host != nil
        else {
            throw JobInputError(#"http.request takes {"url": "http://…"} and optionally method, headers, body"#)
        }
        var request = HTTPClientRequest(url: url)
        request.method = HTTPMethod(rawValue: input["method"]?.stringValue ?? "POST")
        if case .object(let headers) = input["headers"] ?? .object([:]) {
            for (name, value) in headers {
                request.headers.add(name: name, value: value.stringValue ?? "")
            }
        }
        switch input["body"] {
        case .none, .null?: break
        case .string(let text)?:
            request.body = .bytes(ByteBuffer(string: text))
        case let json?:
            request.body = .bytes(ByteBuffer(bytes: json.data))
            if !request.headers.contains(name: "content-type") {
                request.headers.add(name: "Content-Type", value: "application/json")
            }
        }
        let seconds = input["timeoutSeconds"]?.numberValue ?? 10
        guard seconds > 0, seconds <= 300 else {
            throw JobInputError("http.request timeoutSeconds must be more than 0 and at most 300")
        }
        return (request, .milliseconds(Int64(seconds * 1000)))
    }
}

/// A webhook answered with a status worth retrying.
struct WebhookError: Error, CustomStringConvertible {
    var status: Int
    var description: String { "The webhook answered \(status)" }
}
