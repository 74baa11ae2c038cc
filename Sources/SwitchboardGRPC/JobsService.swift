import Foundation
import GRPCCore
import SwitchboardAPI
import SwitchboardEngine
import SwitchboardJobs
import SwitchboardProtos
import SwitchboardStore

/// `switchboard.v1.Jobs`: the job queue of `/v1/jobs` — submissions checked by the same rules, the
/// same leases, retries and dead letters — and `Work`, a worker's stream of leased jobs.
struct JobsService: Switchboard_V1_Jobs.ServiceProtocol {
    let jobs: Jobs
    let api: JobsAPI
    let authorizer: CallAuthorizer
    let idempotency: IdempotentCalls

    func submit(
        request: ServerRequest<Switchboard_V1_SubmitRequest>,
        context: ServerContext
    ) async throws -> ServerResponse<Switchboard_V1_Job> {
        let caller = try await authorizer.caller(of: request.metadata)
        let new = try await rpc { try api.newJob(from: JobSubmission(request.message), caller: caller) }
        return try await idempotency.run(
            request,
            context: context,
            caller: caller,
            answer: { Switchboard_V1_Job($0.job) }
        ) { receipt in
            try await jobs.submit(new, receipt: receipt)
        }
    }

    func get(
        request: ServerRequest<Switchboard_V1_GetRequest>,
        context: ServerContext
    ) async throws -> ServerResponse<Switchboard_V1_Job> {
        let caller = try await authorizer.caller(of: request.metadata)
        return ServerResponse(message: .init(try await job(request.message.id, for: caller)))
    }

    func watch(
        request: ServerRequest<Switchboard_V1_GetRequest>,
        context: ServerContext
    ) async throws -> StreamingServerResponse<Switchboard_V1_Job> {
        let caller = try await authorizer.caller(of: request.metadata)
        let first = try await job(request.message.id, for: caller)
        let lifetime = CallLifetime(metadata: request.metadata)
        return StreamingServerResponse { writer in
            try await lifetime.run {
                var job = first
                try await writer.write(.init(job))
                while !job.state.isFinal {
                    let next = try await rpc {
                        try await jobs.job(id: job.id, changedAfter: job.version, waitingUpTo: .seconds(30))
                    }
                    guard let next else { return }  // deleted after its retention
                    if next.version != job.version {
                        try await writer.write(.init(next))
                    }
                    job = next
                }
            }
            return [:]
        }
    }

    func cancel(
        request: ServerRequest<Switchboard_V1_GetRequest>,
        context: ServerContext
    ) async throws -> ServerResponse<Switchboard_V1_Job> {
        let caller = try await authorizer.caller(of: request.metadata)
        let id = try await job(request.message.id, for: caller).id
        let change = try await rpc { try await api.translating { try await jobs.cancel(id: id) } }
        return ServerResponse(message: .init(change.job))
    }

    func work(
        request: StreamingServerRequest<Switchboard_V1_WorkRequest>,
        context: ServerContext
    ) async throws -> StreamingServerResponse<Switchboard_V1_WorkEvent> {
        let caller = try await authorizer.caller(of: request.metadata)
        let lifetime = CallLifetime(metadata: request.metadata)
        return StreamingServerResponse { writer in
            try await lifetime.run {
                try await WorkStream(service: self, caller: caller)
                    .run(requests: request.messages, writer: writer)
            }
            return [:]
        }
    }

    /// The job `id`, once the caller may use its queue.
    func job(_ text: String, for caller: Caller) async throws -> Job {
        try await rpc {
            let id = try JobsAPI.jobID(text)
            guard let job = try await jobs.job(id: id) else {
                throw HTTPError(.notFound, code: "job_not_found", message: "No job \(id)")
            }
            try caller.authorize(.useQueue(job.queue))
            return job
        }
    }
}

extension JobSubmission {
    /// A gRPC submission; zero and empty fields mean "the default", as absent JSON fields do.
    init(_ request: Switchboard_V1_SubmitRequest) throws {
        self.init(type: request.type)
        queue = request.queue.isEmpty ? nil : request.queue
        if !request.input.isEmpty {
            guard let input = JSONValue(json: Data(request.input.utf8)) else {
                throw HTTPError.badRequest(code: "invalid_input", message: "input is not JSON text")
            }
            self.input = input
        }
        maxAttempts = request.maxAttempts == 0 ? nil : Int(request.maxAttempts)
        timeoutSeconds = request.timeoutSeconds == 0 ? nil : request.timeoutSeconds
        priority = Int(request.priority)
        runAt = request.runAt == 0 ? nil : request.runAt
        uniqueKey = request.uniqueKey.isEmpty ? nil : request.uniqueKey
    }
}

extension Switchboard_V1_Job {
    init(_ job: Job) {
        self.init()
        id = job.id
        queue = job.queue
        type = job.type
        input = String(decoding: job.input, as: UTF8.self)
        state = .init(job.state)
        priority = Int32(clamping: job.priority)
        attempts = Int32(clamping: job.attempts)
        maxAttempts = Int32(clamping: job.maxAttempts)
        runAt = job.runAt
        createdAt = job.createdAt
        updatedAt = job.updatedAt
        result = job.result.map { String(decoding: $0, as: UTF8.self) } ?? ""
        error = job.error ?? ""
        version = job.version
    }
}

extension Switchboard_V1_JobState {
    init(_ state: JobState) {
        switch state {
        case .queued: self = .queued
        case .running: self = .running
        case .succeeded: self = .succeeded
        case .failed: self = .failed
        case .dead: self = .dead
        case .cancelled: self = .cancelled
        }
    }
}
