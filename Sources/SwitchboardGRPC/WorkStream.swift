import Foundation
import GRPCCore
import SwitchboardAPI
import SwitchboardEngine
import SwitchboardJobs
import SwitchboardProtos
import SwitchboardStore
import Synchronization

/// One `Jobs.Work` call: after its `start`, the stream holds up to `concurrency` jobs of its queues under
/// lease at a time — a claimer task leases the next due job whenever a slot is free and sends it — while
/// the worker's heartbeats, completions and failures come in on the same stream. Jobs held when the
/// stream ends go back to their queue when their lease runs out, as with any worker that vanishes.
struct WorkStream {
    let service: JobsService
    let caller: Caller

    func run(
        requests: RPCAsyncSequence<Switchboard_V1_WorkRequest, any Error>,
        writer: RPCWriter<Switchboard_V1_WorkEvent>
    ) async throws {
        var iterator = requests.makeAsyncIterator()
        guard case .start(let start) = try await iterator.next()?.op else {
            throw RPCError(code: .invalidArgument, message: "A work stream begins with start")
        }
        let queues = try checkedQueues(start)
        let lease: Duration? = start.leaseSeconds > 0 ? .milliseconds(Int64(start.leaseSeconds * 1000)) : nil
        let held = HeldJobs(slots: Int(start.concurrency == 0 ? 1 : start.concurrency))
        let jobs = service.jobs
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                // The claimer: one due job per free slot, from the queues in turn.
                while await held.waitForSlot() {
                    var claimed: Job?
                    while claimed == nil {
                        try Task.checkCancellation()
                        for queue in queues where claimed == nil {
                            // Waits on the first queue (a submission wakes it), polls the others.
                            let wait: Duration = queue == queues[0] ? .milliseconds(500) : .zero
                            claimed = try await jobs.claim(queue: queue, lease: lease, waitingUpTo: wait)
                        }
                    }
                    guard let claimed, let token = claimed.leaseToken else { continue }
                    held.take(claimed.id, token: token)
                    try await writer.write(.with { $0.job = .init(claimed) })
                }
            }
            while let request = try await iterator.next() {
                try await writer.write(answer(request, held: held, lease: lease))
            }
            // The worker closed its side: no more jobs for it.
            group.cancelAll()
            held.close()
        }
    }

    private func checkedQueues(_ start: Switchboard_V1_WorkStart) throws -> [String] {
        guard !start.queues.isEmpty, start.concurrency >= 0, start.concurrency <= 1000,
            start.leaseSeconds >= 0, start.leaseSeconds <= service.api.configuration.maxLeaseSeconds
        else {
            throw RPCError(
                code: .invalidArgument,
                message: "start needs queues, a concurrency of at most 1000 and a lease of at most "
                    + "\(Int(service.api.configuration.maxLeaseSeconds)) s"
            )
        }
        for queue in start.queues {
            do {
                try JobsAPI.checkQueueName(queue)
                try caller.authorize(.useQueue(queue))
            } catch {
                throw RPCError(error)
            }
        }
        return start.queues
    }

    /// The event answering a heartbeat, complete or fail of a job this stream holds.
    private func answer(
        _ request: Switchboard_V1_WorkRequest,
        held: HeldJobs,
        lease: Duration?
    ) async -> Switchboard_V1_WorkEvent {
        let jobs = service.jobs
        let id: String
        do {
            switch request.op {
            case .heartbeat(let heartbeat):
                id = heartbeat.id
                let token = try held.token(of: id)
                let job = try await service.api.translating {
                    try await jobs.heartbeat(id: id, token: token, lease: lease)
                }
                return .with { $0.updated = .init(job) }
            case .complete(let complete):
                id = complete.id
                let token = try held.token(of: id)
                let result = complete.result.isEmpty ? .null : JSONValue(json: Data(complete.result.utf8))
                guard let result else {
                    throw HTTPError.badRequest(code: "invalid_body", message: "result is not JSON text")
                }
                let change = try await service.api.translating {
                    try await jobs.complete(id: id, token: token, result: result)
                }
                held.release(id)
                return .with { $0.updated = .init(change.job) }
            case .fail(let fail):
                id = fail.id
                let token = try held.token(of: id)
                let change = try await service.api.translating {
                    try await jobs.fail(id: id, token: token, error: fail.error, retry: fail.retry)
                }
                held.release(id)
                return .with { $0.updated = .init(change.job) }
            case .start, nil:
                return .error("", RPCError(code: .invalidArgument, message: "Expected heartbeat, complete or fail"))
            }
        } catch {
            // A job this stream can no longer finish (its lease ran out, it was cancelled) frees its slot.
            if let refusal = error as? HTTPError, [404, 409].contains(refusal.status.code) {
                held.release(Self.id(of: request))
            }
            return .error(Self.id(of: request), RPCError(error))
        }
    }

    private static func id(of request: Switchboard_V1_WorkRequest) -> String {
        switch request.op {
        case .heartbeat(let heartbeat): heartbeat.id
        case .complete(let complete): complete.id
        case .fail(let fail): fail.id
        case .start, nil: ""
        }
    }
}

extension Switchboard_V1_WorkEvent {
    fileprivate static func error(_ id: String, _ error: RPCError) -> Self {
        .with {
            $0.error = .with {
                $0.id = id
                $0.code =
                    error.metadata[stringValues: "switchboard-error-code"].first(where: { _ in true })
                    ?? "\(error.code)"
                $0.message = error.message
            }
        }
    }
}

/// The jobs a work stream holds, by id with their lease tokens, and its free slots.
private final class HeldJobs: Sendable {
    private struct State {
        var tokens: [String: String] = [:]
        var slots: Int
        var closed = false
        var waiter: CheckedContinuation<Bool, Never>?
    }

    private let state: Mutex<State>

    init(slots: Int) {
        state = Mutex(State(slots: slots))
    }

    /// Waits for a free slot and takes it; `false` once the stream has ended.
    func waitForSlot() async -> Bool {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let ready: Bool? = state.withLock { state in
                    if state.closed || Task.isCancelled { return false }
                    if state.slots > 0 {
                        state.slots -= 1
                        return true
                    }
                    state.waiter = continuation
                    return nil
                }
                ready.map { continuation.resume(returning: $0) }
            }
        } onCancel: {
            close()
        }
    }

    func take(_ id: String, token: String) {
        state.withLock { $0.tokens[id] = token }
    }

    func token(of id: String) throws -> String {
        guard let token = state.withLock({ $0.tokens[id] }) else {
            throw HTTPError(.conflict, code: "lease_lost", message: "This stream holds no lease on job \(id)")
        }
        return token
    }

    /// The job is finished: its slot is free again.
    func release(_ id: String) {
        let waiter = state.withLock { state -> CheckedContinuation<Bool, Never>? in
            guard state.tokens.removeValue(forKey: id) != nil else { return nil }
            guard let waiter = state.waiter else {
                state.slots += 1
                return nil
            }
            state.waiter = nil
            return waiter
        }
        waiter?.resume(returning: true)
    }

    func close() {
        let waiter = state.withLock { state -> CheckedContinuation<Bool, Never>? in
            state.closed = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: false)
    }
}
