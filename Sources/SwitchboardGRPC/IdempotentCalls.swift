import Crypto
import Foundation
import GRPCCore
import SwiftProtobuf
import SwitchboardAPI
import SwitchboardStore

/// `idempotency-key` metadata on the calls that create something (`Publish`, `Submit`), with the HTTP
/// header's contract and store: the first call runs and its answer is kept, committed with its effect; a
/// retry of the same call gets that answer again with `idempotent-replayed: true` in its metadata; the
/// key on a different call is ALREADY_EXISTS, and while the first still runs ABORTED. A call that fails
/// leaves no record, so its retry runs again.
struct IdempotentCalls: Sendable {
    private let store: any IdempotencyStore
    private let retention: Duration

    init(store: any IdempotencyStore, retention: Duration) {
        self.store = store
        self.retention = retention
    }

    /// Runs `perform` once per key: with a receipt to commit with its effect when the call has a key.
    func run<Request: SwiftProtobuf.Message, Effect, Output: SwiftProtobuf.Message>(
        _ request: ServerRequest<Request>,
        context: ServerContext,
        caller: Caller,
        answer: @escaping @Sendable (Effect) -> Output,
        perform: (IdempotencyReceipt<Effect>?) async throws -> Effect
    ) async throws -> ServerResponse<Output> {
        guard let header = request.metadata[stringValues: "idempotency-key"].first(where: { _ in true }) else {
            return ServerResponse(message: answer(try await rpc { try await perform(nil) }))
        }
        return try await rpc {
            let key = try Idempotency.key(from: header, caller: caller)
            let now = Date().millisecondsSince1970
            let expiry = now + retention.milliseconds
            let fingerprint = try Self.fingerprint(request.message, method: context.descriptor)
            switch try await store.claim(
                key,
                fingerprint: fingerprint,
                owner: store.processOwner,
                now: now,
                expiresAt: expiry
            ) {
            case .replay(let recorded):
                return ServerResponse(
                    message: try Output(serializedBytes: recorded.body),
                    metadata: ["idempotent-replayed": "true"]
                )
            case .inProgress:
                throw Idempotency.keyInUse
            case .mismatch:
                throw Idempotency.keyReused
            case .started:
                let receipt = IdempotencyReceipt<Effect>(key: key, expiresAt: expiry) { effect in
                    RecordedResponse(status: 200, headers: [], body: (try? answer(effect).serializedBytes()) ?? Data())
                }
                let effect: Effect
                do {
                    effect = try await perform(receipt)
                } catch {
                    try? await store.release(key)
                    throw error
                }
                let output = answer(effect)
                let recorded = RecordedResponse(status: 200, headers: [], body: try output.serializedBytes())
                try await store.record(recorded, for: key, expiresAt: expiry)
                return ServerResponse(message: output)
            }
        }
    }

    /// What makes two calls the same: the method and the request message, as serialized.
    private static func fingerprint(_ message: some SwiftProtobuf.Message, method: MethodDescriptor) throws -> String {
        var hash = SHA256()
        hash.update(data: Data("grpc \(method.fullyQualifiedMethod)\n".utf8))
        hash.update(data: try message.serializedBytes() as Data)
        return hash.finalize().map { String(format: "%02x", $0) }.joined()
    }
}
