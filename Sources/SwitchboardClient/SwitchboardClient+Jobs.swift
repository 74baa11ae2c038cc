import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

extension SwitchboardClient {
    /// A job as the server describes it; `json` is the whole answer, input and result included.
    public struct JobInfo: Sendable {
        public var id: String
        public var queue: String
        public var type: String
        public var state: String
        public var attempts: Int
        public var version: Int64
        public var timeoutSeconds: Double
        public var error: String?
        /// The lease token, only on a claimed job.
        public var leaseToken: String?
        /// The job's input as JSON text.
        public var input: Data
        /// The server's JSON for the job.
        public var json: String

        public var isFinal: Bool { !["queued", "running"].contains(state) }

        init(_ reply: Reply) throws {
            struct Fields: Decodable {
                struct Lease: Decodable {
                    var token: String
                }
                var id: String
                var queue: String
                var type: String
                var state: String
                var attempts: Int
                var version: Int64
                var timeoutSeconds: Double
                var error: String?
                var lease: Lease?
            }
            let body = Data(reply.body.readableBytesView)
            let fields = try JSONDecoder().decode(Fields.self, from: body)
            let object = try JSONSerialization.jsonObject(with: body) as? [String: Any]
            id = fields.id
            queue = fields.queue
            type = fields.type
            state = fields.state
            attempts = fields.attempts
            version = fields.version
            timeoutSeconds = fields.timeoutSeconds
            error = fields.error
            leaseToken = fields.lease?.token
            input = try JSONSerialization.data(withJSONObject: object?["input"] ?? NSNull(), options: .fragmentsAllowed)
            json = reply.text
        }
    }

    /// What to submit besides the type and input.
    public struct JobOptions: Sendable {
        public var queue: String?
        public var maxAttempts: Int?
        public var timeoutSeconds: Double?
        public var priority: Int?
        public var delaySeconds: Double?
        public var uniqueKey: String?

        public init(
            queue: String? = nil,
            maxAttempts: Int? = nil,
            timeoutSeconds: Double? = nil,
            priority: Int? = nil,
            delaySeconds: Double? = nil,
            uniqueKey: String? = nil
        ) {
            self.queue = queue
            self.maxAttempts = maxAttempts
            self.timeoutSeconds = timeoutSeconds
            self.priority = priority
            self.delaySeconds = delaySeconds
            self.uniqueKey = uniqueKey
        }
    }

    /// `POST /v1/jobs`; with `wait`, the finished job when it ends in time.
    /// - Parameter input: the input as JSON text.
    public func submitJob(
        type: String,
        input: Data,
        options: JobOptions = JobOptions(),
        wait: Double? = nil,
        idempotencyKey: String? = nil
    ) async throws -> JobInfo {
        var body: [String: Any] = [
            "type": type, "input": try JSONSerialization.jsonObject(with: input, options: .fragmentsAllowed),
        ]
        body["queue"] = options.queue
        body["maxAttempts"] = options.maxAttempts
        body["timeoutSeconds"] = options.timeoutSeconds
        body["priority"] = options.priority
        body["delaySeconds"] = options.delaySeconds
        body["uniqueKey"] = options.uniqueKey
        var headers: HTTPHeaders = ["Content-Type": "application/json"]
        if let idempotencyKey {
            headers.add(name: "Idempotency-Key", value: idempotencyKey)
        }
        let reply = try await send(
            .POST,
            "/v1/jobs" + (wait.map { "?wait=\($0)" } ?? ""),
            headers: headers,
            body: ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body))
        )
        return try JobInfo(checked(reply))
    }

    /// `GET /v1/jobs/{id}`; with `wait`, a long poll until the job changes past `version`.
    public func job(id: String, changedAfter version: Int64? = nil, wait: Double? = nil) async throws -> JobInfo {
        var query: [String] = []
        if let wait { query.append("wait=\(wait)") }
        if let version { query.append("version=\(version)") }
        let path = "/v1/jobs/\(id)" + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))
        return try JobInfo(checked(try await send(.GET, path)))
    }

    /// The job once it is final, long polling in steps of at most 30 s until `timeout` seconds pass.
    public func job(id: String, finishedWithin timeout: Double) async throws -> JobInfo {
        let deadline = Date().addingTimeInterval(timeout)
        var job = try await self.job(id: id)
        while !job.isFinal {
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else { break }
            job = try await self.job(id: id, changedAfter: job.version, wait: min(30, left))
        }
        return job
    }

    /// `DELETE /v1/jobs/{id}`.
    public func cancelJob(id: String) async throws -> JobInfo {
        try JobInfo(checked(try await send(.DELETE, "/v1/jobs/\(id)")))
    }

    /// `GET /v1/jobs`: the server's JSON listing, newest first.
    public func jobsListing(queue: String? = nil, state: String? = nil, limit: Int = 100) async throws -> String {
        var query = ["limit=\(limit)"]
        if let queue { query.append("queue=\(queue)") }
        if let state { query.append("state=\(state)") }
        return try checked(try await send(.GET, "/v1/jobs?" + query.joined(separator: "&"))).text
    }

    /// `POST /v1/queues/{queue}/claim`: the next job with its lease, or `nil` when none came in `wait`.
    public func claim(queue: String, wait: Double, leaseSeconds: Double? = nil) async throws -> JobInfo? {
        var path = "/v1/queues/\(queue)/claim?wait=\(wait)"
        if let leaseSeconds { path += "&lease=\(leaseSeconds)" }
        let reply = try checked(try await send(.POST, path))
        return reply.status == .noContent ? nil : try JobInfo(reply)
    }

    /// `POST /v1/jobs/{id}/heartbeat`: extends the lease; throws `lease_lost` when it is gone.
    public func heartbeat(id: String, token: String, leaseSeconds: Double? = nil) async throws {
        var body: [String: Any] = ["leaseToken": token]
        body["leaseSeconds"] = leaseSeconds
        _ = try checked(try await postJSON("/v1/jobs/\(id)/heartbeat", body))
    }

    /// `POST /v1/jobs/{id}/complete` with the result as JSON text.
    public func complete(id: String, token: String, result: Data) async throws -> JobInfo {
        let body: [String: Any] = [
            "leaseToken": token, "result": try JSONSerialization.jsonObject(with: result, options: .fragmentsAllowed),
        ]
        return try JobInfo(checked(try await postJSON("/v1/jobs/\(id)/complete", body)))
    }

    /// `POST /v1/jobs/{id}/fail`; without `retry` the job fails for good.
    public func fail(id: String, token: String, error: String, retry: Bool = true) async throws -> JobInfo {
        let body: [String: Any] = ["leaseToken": token, "error": error, "retry": retry]
        return try JobInfo(checked(try await postJSON("/v1/jobs/\(id)/fail", body)))
    }

    private func postJSON(_ path: String, _ body: [String: Any]) async throws -> Reply {
        try await send(
            .POST,
            path,
            headers: ["Content-Type": "application/json"],
            body: ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body))
        )
    }
}
