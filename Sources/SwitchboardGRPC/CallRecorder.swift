import CoreMetrics
import GRPCCore
import NIOCore
import SwitchboardEngine
import Synchronization

/// Records every call as it ends: `grpc_server_started_total`, `grpc_server_handled_total` by status
/// code and the `grpc_server_handling_seconds` histogram, per service and method (the labels of
/// go-grpc-prometheus), and an access line (`/todoPackage.Todo/createTodo OK`) when the access log is on.
struct CallRecorder: ServerInterceptor {
    private let metrics: MethodMetrics
    private let accessLog: AccessLog?

    init(factory: any MetricsFactory, accessLog: AccessLog?) {
        self.metrics = MethodMetrics(factory: factory)
        self.accessLog = accessLog
    }

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let started = NIODeadline.now()
        let method = metrics.method(context.descriptor)
        method.started.increment()
        let finish = { @Sendable (code: RPCError.Code?) in
            self.finish(method, context: context, code: code, started: started)
        }
        let response: StreamingServerResponse<Output>
        do {
            response = try await next(request, context)
        } catch {
            finish(Self.code(of: error))
            throw error
        }
        guard case .success(var contents) = response.accepted else {
            if case .failure(let error) = response.accepted { finish(error.code) }
            return response
        }
        let producer = contents.producer
        contents.producer = { writer in
            do {
                let trailers = try await producer(writer)
                finish(nil)
                return trailers
            } catch {
                finish(Self.code(of: error))
                throw error
            }
        }
        return StreamingServerResponse(accepted: .success(contents))
    }

    /// `nil` is OK.
    private func finish(
        _ method: MethodMetrics.Method,
        context: ServerContext,
        code: RPCError.Code?,
        started: NIODeadline
    ) {
        let elapsed = NIODeadline.now() - started
        let name = code.map(\.canonicalName) ?? "OK"
        method.handling.recordNanoseconds(elapsed.nanoseconds)
        method.handled(code).increment()
        accessLog?.write(
            "/\(context.descriptor.fullyQualifiedMethod) \(name)",
            fields: ["duration_ms": elapsed.millisecondsText, "peer": context.remotePeer],
            source: "SwitchboardGRPC"
        )
    }

    /// What the client sees of an error the handler threw: its code, or UNKNOWN as grpc-swift sends it.
    private static func code(of error: any Error) -> RPCError.Code {
        (error as? any RPCErrorConvertible)?.rpcErrorCode ?? .unknown
    }
}

/// The metric objects of each method, made on its first call and kept: the registry is asked once.
private final class MethodMetrics: Sendable {
    final class Method: Sendable {
        let labels: [(String, String)]
        let started: Counter
        let handling: Timer
        /// By status code, made on the code's first use (most methods only ever see a few).
        private let handledByCode = Mutex([Int: Counter]())
        private let factory: any MetricsFactory

        init(labels: [(String, String)], factory: any MetricsFactory) {
            self.labels = labels
            self.factory = factory
            self.started = Counter(label: "grpc_server_started_total", dimensions: labels, factory: factory)
            self.handling = Timer(label: "grpc_server_handling_seconds", dimensions: labels, factory: factory)
        }

        func handled(_ code: RPCError.Code?) -> Counter {
            let key = code?.rawValue ?? 0
            return handledByCode.withLock { counters in
                if let counter = counters[key] { return counter }
                let counter = Counter(
                    label: "grpc_server_handled_total",
                    dimensions: labels + [("grpc_code", code?.canonicalName ?? "OK")],
                    factory: factory
                )
                counters[key] = counter
                return counter
            }
        }
    }

    private let factory: any MetricsFactory
    private let methods = Mutex([String: Method]())

    init(factory: any MetricsFactory) {
        self.factory = factory
    }

    func method(_ descriptor: MethodDescriptor) -> Method {
        let name = descriptor.fullyQualifiedMethod
        return methods.withLock { methods in
            if let method = methods[name] { return method }
            let labels = [
                ("grpc_service", descriptor.service.fullyQualifiedService),
                ("grpc_method", descriptor.method),
                ("grpc_type", descriptor.type.map(Self.typeName) ?? "unknown"),
            ]
            let method = Method(labels: labels, factory: factory)
            methods[name] = method
            return method
        }
    }

    private static func typeName(_ type: MethodDescriptor.RPCType) -> String {
        switch type {
        case .unary: "unary"
        case .serverStreaming: "server_stream"
        case .clientStreaming: "client_stream"
        case .bidirectionalStreaming: "bidi_stream"
        }
    }
}

extension RPCError.Code {
    /// The name the gRPC specification gives the code (`INVALID_ARGUMENT`).
    var canonicalName: String {
        let names = [
            "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
            "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
            "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
        ]
        return names.indices.contains(rawValue) ? names[rawValue] : "UNKNOWN"
    }
}
