import Foundation
import GRPCCore
import SwitchboardProtos

/// The standard interoperability `grpc.testing.TestService` (`serve --grpc-interop`), so that the
/// official interop clients of other gRPC implementations can check this server: payloads of the asked
/// sizes, echoed status and metadata, streams in every direction.
struct InteropService: Grpc_Testing_TestService.ServiceProtocol {
    private static let echoInitial = "x-grpc-test-echo-initial"
    private static let echoTrailing = "x-grpc-test-echo-trailing-bin"

    func emptyCall(
        request: ServerRequest<Grpc_Testing_Empty>,
        context: ServerContext
    ) async throws -> ServerResponse<Grpc_Testing_Empty> {
        ServerResponse(
            message: Grpc_Testing_Empty(),
            metadata: Self.initialEcho(of: request.metadata),
            trailingMetadata: Self.trailingEcho(of: request.metadata)
        )
    }

    func unaryCall(
        request: ServerRequest<Grpc_Testing_SimpleRequest>,
        context: ServerContext
    ) async throws -> ServerResponse<Grpc_Testing_SimpleResponse> {
        let asked = request.message
        try Self.checkCompression(expected: asked.expectCompressed.value, metadata: request.metadata)
        if asked.hasResponseStatus {
            try Self.throwIfFailing(asked.responseStatus)
        }
        var response = Grpc_Testing_SimpleResponse()
        response.payload = Self.payload(size: asked.responseSize)
        return ServerResponse(
            message: response,
            metadata: Self.initialEcho(of: request.metadata),
            trailingMetadata: Self.trailingEcho(of: request.metadata)
        )
    }

    func cacheableUnaryCall(
        request: ServerRequest<Grpc_Testing_SimpleRequest>,
        context: ServerContext
    ) async throws -> ServerResponse<Grpc_Testing_SimpleResponse> {
        try await unaryCall(request: request, context: context)
    }

    func streamingOutputCall(
        request: ServerRequest<Grpc_Testing_StreamingOutputCallRequest>,
        context: ServerContext
    ) async throws -> StreamingServerResponse<Grpc_Testing_StreamingOutputCallResponse> {
        StreamingServerResponse(metadata: Self.initialEcho(of: request.metadata)) { writer in
            try await Self.respond(to: request.message, with: writer)
            return Self.trailingEcho(of: request.metadata)
        }
    }

    func streamingInputCall(
        request: StreamingServerRequest<Grpc_Testing_StreamingInputCallRequest>,
        context: ServerContext
    ) async throws -> ServerResponse<Grpc_Testing_StreamingInputCallResponse> {
        var total = 0
        for try await message in request.messages {
            try Self.checkCompression(expected: message.expectCompressed.value, metadata: request.metadata)
            total += message.payload.body.count
        }
        var response = Grpc_Testing_StreamingInputCallResponse()
        response.aggregatedPayloadSize = Int32(total)
        return ServerResponse(message: response, metadata: Self.initialEcho(of: request.metadata))
    }

    func fullDuplexCall(
        request: StreamingServerRequest<Grpc_Testing_StreamingOutputCallRequest>,
        context: ServerContext
    ) async throws -> StreamingServerResponse<Grpc_Testing_StreamingOutputCallResponse> {
        StreamingServerResponse(metadata: Self.initialEcho(of: request.metadata)) { writer in
            for try await message in request.messages {
                try await Self.respond(to: message, with: writer)
            }
            return Self.trailingEcho(of: request.metadata)
        }
    }

    func halfDuplexCall(
        request: StreamingServerRequest<Grpc_Testing_StreamingOutputCallRequest>,
        context: ServerContext
    ) async throws -> StreamingServerResponse<Grpc_Testing_StreamingOutputCallResponse> {
        StreamingServerResponse(metadata: Self.initialEcho(of: request.metadata)) { writer in
            var received: [Grpc_Testing_StreamingOutputCallRequest] = []
            for try await message in request.messages {
                received.append(message)
            }
            for message in received {
                try await Self.respond(to: message, with: writer)
            }
            return Self.trailingEcho(of: request.metadata)
        }
    }

    func unimplementedCall(
        request: ServerRequest<Grpc_Testing_Empty>,
        context: ServerContext
    ) async throws -> ServerResponse<Grpc_Testing_Empty> {
        throw RPCError(code: .unimplemented, message: "UnimplementedCall is not implemented, by design")
    }

    /// One response per parameter set, each after its interval; or the status the request asks for.
    private static func respond(
        to request: Grpc_Testing_StreamingOutputCallRequest,
        with writer: RPCWriter<Grpc_Testing_StreamingOutputCallResponse>
    ) async throws {
        if request.hasResponseStatus {
            try throwIfFailing(request.responseStatus)
        }
        for parameters in request.responseParameters {
            if parameters.intervalUs > 0 {
                try await Task.sleep(for: .microseconds(parameters.intervalUs))
            }
            var response = Grpc_Testing_StreamingOutputCallResponse()
            response.payload = payload(size: parameters.size)
            try await writer.write(response)
        }
    }

    private static func payload(size: Int32) -> Grpc_Testing_Payload {
        var payload = Grpc_Testing_Payload()
        payload.type = .compressable
        payload.body = Data(count: Int(max(size, 0)))
        return payload
    }

    private static func throwIfFailing(_ status: Grpc_Testing_EchoStatus) throws {
        guard status.code != 0 else { return }
        let code = Status.Code(rawValue: Int(status.code)).flatMap(RPCError.Code.init) ?? .unknown
        throw RPCError(code: code, message: status.message)
    }

    /// A request that says it was compressed must have come with a `grpc-encoding` other than identity.
    private static func checkCompression(expected: Bool, metadata: Metadata) throws {
        let encoding = metadata[stringValues: "grpc-encoding"].first(where: { _ in true }) ?? "identity"
        if expected, encoding == "identity" {
            throw RPCError(code: .invalidArgument, message: "Expected a compressed request")
        }
    }

    private static func initialEcho(of metadata: Metadata) -> Metadata {
        var echo = Metadata()
        for value in metadata[stringValues: echoInitial] {
            echo.addString(value, forKey: echoInitial)
        }
        return echo
    }

    private static func trailingEcho(of metadata: Metadata) -> Metadata {
        var echo = Metadata()
        for value in metadata[binaryValues: echoTrailing] {
            echo.addBinary(value, forKey: echoTrailing)
        }
        return echo
    }
}
