import Foundation
import NIOCore
import NIOHTTP1
import SwitchboardBroker
import SwitchboardEngine
import SwitchboardJobs
import SwitchboardStore

/// The job endpoints: submit (asynchronous, or synchronous with `?wait=`), poll, long poll, SSE,
/// cancel, the dead-letter list and requeue, and the claim/heartbeat/complete/fail protocol of external
/// workers.
public struct JobsAPI: Sendable {
    public struct Configuration: Sendable {
        /// Largest job submission (input included); over it 413.
        public var maxSubmissionBytes = 1 << 20
        /// Longest `wait` a request may ask for, in seconds.
        public var maxWaitSeconds: Double = 60
        /// Longest lease a worker may ask for, in seconds.
        public var maxLeaseSeconds: Double = 3600
        /// The queues the built-in workers serve: jobs there must be of a built-in type.
        public var builtInQueues: Set<String> = ["default"]

        public init() {}
    }

    public let jobs: Jobs
    let handlers: JobHandlers
    let topics: TopicsAPI
    public let configuration: Configuration

    /// - Parameter topics: serves the job event streams.
    public init(jobs: Jobs, handlers: JobHandlers, topics: TopicsAPI, configuration: Configuration = Configuration()) {
        self.jobs = jobs
        self.handlers = handlers
        self.topics = topics
        self.configuration = configuration
    }

    public func register(in router: inout Router) {
        router.add(.POST, "/v1/jobs", maxBodyBytes: configuration.maxSubmissionBytes) { try await submit($0) }
        router.add(.GET, "/v1/jobs") { try await list($0) }
        router.add(.GET, "/v1/queues") { _ in
            // Every queue's counts: a view for those who may use them all.
            try Caller.authorize(.useQueue("*"))
            return Self.queues(try await jobs.queueCounts())
        }
        router.add(.GET, "/v1/jobs/{id}") { try await status($0) }
        router.add(.DELETE, "/v1/jobs/{id}") { request in
            try answer(await translating { try await jobs.cancel(id: authorizedID(request)) }.job)
        }
        router.add(.GET, "/v1/jobs/{id}/events") { request in
            let job = try await existingJob(request)
            return try await topics.eventStream(topic: Jobs.topic(of: job.id), request: request, defaultAfter: 0)
        }
        router.add(.POST, "/v1/jobs/{id}/requeue") { request in
            try answer(await translating { try await jobs.requeue(id: authorizedID(request)) }.job)
        }
        router.add(.POST, "/v1/queues/{queue}/claim") { try await claim($0) }
        router.add(.POST, "/v1/jobs/{id}/heartbeat", maxBodyBytes: 4096) { try await heartbeat($0) }
        router.add(.POST, "/v1/jobs/{id}/complete", maxBodyBytes: configuration.maxSubmissionBytes) { request in
            let body = try Self.decode(CompleteBody.self, from: request)
            let change = try await translating {
                try await jobs.complete(id: authorizedID(request), token: body.leaseToken, result: body.result ?? .null)
            }
            return try answer(change.job)
        }
        router.add(.POST, "/v1/jobs/{id}/fail", maxBodyBytes: 65536) { request in
            let body = try Self.decode(FailBody.self, from: request)
            let change = try await translating {
                try await jobs.fail(
                    id: authorizedID(request),
                    token: body.leaseToken,
                    error: body.error ?? "failed",
                    retry: body.retry ?? true
                )
            }
            return try answer(change.job)
        }
    }

    /// `POST /v1/jobs`: 202 with `Location` at once, or with `?wait=S` the finished job (200) when it ends
    /// within S seconds.
    private func submit(_ request: Request) async throws -> Response {
        let wait = try QueryParameters(request).seconds("wait", max: configuration.maxWaitSeconds)
        let body = try Self.decode(JobSubmission.self, from: request)
        let new = try newJob(from: body, caller: Caller.required())
        var change = try await jobs.submit(new, receipt: IdempotencyScope.current?.receipt(Self.submitted))
        if let wait, let finished = try await jobs.job(id: change.job.id, finishedWithin: wait) {
            change.job = finished
        }
        return Self.submitted(change).held(wait != nil)
    }

    /// 202 with `Location` while the job is live, 200 once it is final; marked when a unique job existed.
    private static func submitted(_ change: JobChange) -> Response {
        let job = change.job
        var response = Response.json(
            ByteBuffer(bytes: JobJSON.encode(job)),
            status: job.state.isFinal ? .ok : .accepted
        )
        response.headers.add(name: "Location", value: "/v1/jobs/\(job.id)")
        if change.event == nil {
            response.headers.add(name: "Switchboard-Unique", value: "existing")
        }
        return response
    }

    /// Checks a submission (any transport's): names, limits, the caller's claim on the queue, and for
    /// queues of the built-in workers, a known type and an input its handler accepts.
    public func newJob(from body: JobSubmission, caller: Caller) throws -> NewJob {
        let queue = body.queue ?? "default"
        try Self.checkQueueName(queue)
        try caller.authorize(.useQueue(queue))
        try Self.checkName(body.type, kind: "Job type", code: "job_type_invalid")
        let input = body.input ?? .null
        if configuration.builtInQueues.contains(queue) {
            guard let handler = handlers[body.type] else {
                throw HTTPError.badRequest(
                    code: "job_type_unknown",
                    message: "Queue \(queue) runs the built-in types \(handlers.types.joined(separator: ", ")); "
                        + "put other types on a queue of external workers"
                )
            }
            do {
                try handler.validate(input)
            } catch let error as JobInputError {
                throw HTTPError.badRequest(code: "invalid_input", message: error.message)
            }
        }
        let maxAttempts = body.maxAttempts ?? 3
        let timeout = body.timeoutSeconds ?? 60
        guard (1...100).contains(maxAttempts) else {
            throw HTTPError.badRequest(code: "invalid_body", message: "maxAttempts must be from 1 to 100")
        }
        // Every store keeps it as a 32-bit integer.
        if let priority = body.priority, Int32(exactly: priority) == nil {
            throw HTTPError.badRequest(
                code: "invalid_body",
                message: "priority must be from \(Int32.min) to \(Int32.max)"
            )
        }
        guard timeout > 0, timeout <= 86_400 else {
            throw HTTPError.badRequest(code: "invalid_body", message: "timeoutSeconds must be over 0 and at most 86400")
        }
        if let delay = body.delaySeconds, delay < 0 || delay > 31_536_000 {
            throw HTTPError.badRequest(code: "invalid_body", message: "delaySeconds must be from 0 to 31536000")
        }
        if let window = body.uniqueForSeconds, window <= 0 || window > 31_536_000 {
            throw HTTPError.badRequest(code: "invalid_body", message: "uniqueForSeconds must be from 1 to 31536000")
        }
        if let key = body.uniqueKey, !(1...255).contains(key.utf8.count) {
            throw HTTPError.badRequest(code: "invalid_body", message: "uniqueKey must be 1 to 255 bytes")
        }
        let runAt = body.runAt ?? body.delaySeconds.map { Date().millisecondsSince1970 + Int64($0 * 1000) }
        return NewJob(
            queue: queue,
            type: body.type,
            input: input.data,
            maxAttempts: maxAttempts,
            timeoutSeconds: timeout,
            priority: body.priority ?? 0,
            runAt: runAt,
            uniqueKey: body.uniqueKey,
            uniqueForSeconds: body.uniqueForSeconds ?? 3600
        )
    }

    /// `GET /v1/jobs/{id}`, with `?wait=S` a long poll that returns once the state changes (past
    /// `?version=V`, by default the version it has now), or at once for a finished job.
    private func status(_ request: Request) async throws -> Response {
        let query = QueryParameters(request)
        let wait = try query.seconds("wait", max: configuration.maxWaitSeconds)
        var job = try await existingJob(request)
        // A final job changes no more: the long poll answers at once.
        if let wait, !job.state.isFinal {
            let version = try query.integer("version", in: 0...Int64.max) ?? job.version
            job = try await jobs.job(id: job.id, changedAfter: version, waitingUpTo: wait) ?? job
        }
        return try answer(job).held(wait != nil)
    }

    /// `GET /v1/jobs?queue=Q&state=S&limit=N`, newest first; `state=dead` is the dead-letter list.
    private func list(_ request: Request) async throws -> Response {
        let query = request.query
        let limit = try QueryParameters(request).integer("limit", in: 1...1000) ?? 100
        var state: JobState?
        if let name = query["state"] {
            guard let known = JobState(rawValue: name) else {
                throw HTTPError.badRequest(
                    code: "invalid_parameter",
                    message: "state must be one of \(JobState.allCases.map(\.rawValue).joined(separator: ", "))"
                )
            }
            state = known
        }
        if let queue = query["queue"] {
            try Self.checkQueueName(queue)
        }
        // Without a queue the listing spans them all: only a token for every queue may see it.
        try Caller.authorize(.useQueue(query["queue"] ?? "*"))
        let found = try await jobs.jobs(queue: query["queue"], state: state, limit: Int(limit))
        return .json(ByteBuffer(bytes: JobJSON.encode(list: found)))
    }

    /// `GET /v1/queues`: each queue with its jobs counted by state, queues in name order.
    private static func queues(_ counts: [String: [JobState: Int]]) -> Response {
        var body = JSONObjectWriter(capacity: 64 * counts.count + 16)
        body.raw(
            "queues",
            JSONObjectWriter.array(counts.sorted { $0.key < $1.key }) { item, entry in
                item.string("queue", entry.key)
                for state in JobState.allCases {
                    item.number(state.rawValue, entry.value[state] ?? 0)
                }
            }
        )
        return .json(ByteBuffer(bytes: body.finish()))
    }

    /// `POST /v1/queues/{queue}/claim?wait=S&lease=L`: the next due job with its lease (200), or 204 when
    /// none came within S seconds.
    private func claim(_ request: Request) async throws -> Response {
        let queue = request.parameters["queue"] ?? ""
        try Self.checkQueueName(queue)
        try Caller.authorize(.useQueue(queue))
        let query = QueryParameters(request)
        let wait = try query.seconds("wait", max: configuration.maxWaitSeconds) ?? .zero
        let lease = try leaseDuration(query.seconds("lease", max: configuration.maxLeaseSeconds))
        guard let job = try await jobs.claim(queue: queue, lease: lease, waitingUpTo: wait) else {
            return Response(status: .noContent).held(wait > .zero)
        }
        return Response.json(ByteBuffer(bytes: JobJSON.encode(job, withLease: true))).held(wait > .zero)
    }

    private func heartbeat(_ request: Request) async throws -> Response {
        struct Renewed: Encodable {
            var id: String
            var leaseExpiresAt: Int64
        }
        let body = try Self.decode(HeartbeatBody.self, from: request)
        guard body.leaseSeconds.map({ $0 > 0 && $0 <= configuration.maxLeaseSeconds }) ?? true else {
            throw HTTPError.badRequest(
                code: "invalid_body",
                message: "leaseSeconds must be over 0 and at most \(Int(configuration.maxLeaseSeconds))"
            )
        }
        let lease = try leaseDuration(body.leaseSeconds.map { .milliseconds(Int64($0 * 1000)) })
        let job = try await translating {
            try await jobs.heartbeat(id: authorizedID(request), token: body.leaseToken, lease: lease)
        }
        return try .json(Renewed(id: job.id, leaseExpiresAt: job.leaseExpiresAt ?? 0))
    }

    private func leaseDuration(_ asked: Duration?) throws -> Duration? {
        guard let asked else { return nil }
        guard asked > .zero else {
            throw HTTPError.badRequest(code: "invalid_parameter", message: "lease must be more than 0 seconds")
        }
        return asked
    }

    /// The request's job, once the caller may use its queue.
    private func existingJob(_ request: Request) async throws -> Job {
        let id = try Self.id(of: request)
        guard let job = try await jobs.job(id: id) else { throw Self.notFound(id) }
        try Caller.authorize(.useQueue(job.queue))
        return job
    }

    /// The request's job id, once the caller may use the job's queue (no lookup with authentication off).
    private func authorizedID(_ request: Request) async throws -> String {
        if case .anyone = try Caller.required() { return try Self.id(of: request) }
        return try await existingJob(request).id
    }

    private func answer(_ job: Job) throws -> Response {
        .json(ByteBuffer(bytes: JobJSON.encode(job)))
    }

    /// Runs a job operation, turning the store's refusals into HTTP errors.
    public func translating<T>(_ operation: () async throws -> T) async throws -> T {
        do {
            return try await operation()
        } catch let error as JobStoreError {
            switch error {
            case .notFound:
                throw HTTPError(.notFound, code: "job_not_found", message: "No such job")
            case .leaseLost:
                throw HTTPError(
                    .conflict,
                    code: "lease_lost",
                    message: "This lease is no longer held: it expired, or the job was cancelled or claimed again"
                )
            case .wrongState(let state):
                throw HTTPError(
                    .conflict,
                    code: "job_state_conflict",
                    message: "Not possible while the job is \(state)"
                )
            }
        }
    }

    private static func id(of request: Request) throws -> String {
        try jobID(request.parameters["id"] ?? "")
    }

    private static func notFound(_ id: String) -> HTTPError {
        HTTPError(.notFound, code: "job_not_found", message: "No job \(id)")
    }

    /// A queue name, checked against the one naming rule.
    public static func checkQueueName(_ name: String) throws {
        try checkName(name, kind: "Queue", code: "queue_name_invalid")
    }

    /// A job id as the store keeps it (a UUID in lower case, however the client wrote it); anything that
    /// is not a UUID is a job that does not exist.
    public static func jobID(_ text: String) throws -> String {
        guard UUID(uuidString: text) != nil else { throw notFound(text) }
        return text.lowercased()
    }

    private static func checkName(_ name: String, kind: String, code: String) throws {
        guard TopicName.isValid(name) else {
            throw HTTPError.badRequest(
                code: code,
                message: "\(kind) names are 1 to 200 characters of A-Z a-z 0-9 . _ -"
            )
        }
    }

    static func decode<T: Decodable>(_ type: T.Type, from request: Request) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(request.body.readableBytesView))
        } catch {
            throw HTTPError.badRequest(
                code: "invalid_body",
                message: "The body is not the JSON expected: \(Self.describe(error))"
            )
        }
    }

    private static func describe(_ error: any Error) -> String {
        switch error as? DecodingError {
        case .keyNotFound(let key, _)?: "\(key.stringValue) is missing"
        case .typeMismatch(_, let context)?, .valueNotFound(_, let context)?:
            "\(context.codingPath.map(\.stringValue).joined(separator: ".")) has the wrong type"
        default: "malformed JSON"
        }
    }
}

/// A job submission, as the body of `POST /v1/jobs` or a gRPC `Submit` gives it.
public struct JobSubmission: Decodable, Sendable {
    public var queue: String?
    public var type: String
    public var input: JSONValue?
    public var maxAttempts: Int?
    public var timeoutSeconds: Double?
    public var priority: Int?
    /// Not before this time, in milliseconds since 1970.
    public var runAt: Int64?
    /// Not before this many seconds from now.
    public var delaySeconds: Double?
    public var uniqueKey: String?
    public var uniqueForSeconds: Int64?

    public init(type: String) {
        self.type = type
    }
}

struct HeartbeatBody: Decodable {
    var leaseToken: String
    var leaseSeconds: Double?
}

struct CompleteBody: Decodable {
    var leaseToken: String
    var result: JSONValue?
}

struct FailBody: Decodable {
    var leaseToken: String
    var error: String?
    var retry: Bool?
}
