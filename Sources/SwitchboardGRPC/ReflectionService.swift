import Foundation
import GRPCCore
import GRPCProtobuf
import SwiftProtobuf
import SwitchboardProtos

/// Server reflection v1 (`grpc.reflection.v1.ServerReflection`): grpcurl, Postman and other clients list
/// the services and call them without the `.proto` files. Answers come from the descriptors of the
/// served files, compiled in (`SwitchboardProtos/served_descriptor_set.swift`).
struct ReflectionService: Grpc_Reflection_V1_ServerReflection.ServiceProtocol {
    /// The descriptor set, decoded once.
    private static let files: [String: Google_Protobuf_FileDescriptorProto] = {
        guard let bytes = Data(base64Encoded: servedFileDescriptorSet),
            let set = try? Google_Protobuf_FileDescriptorSet(serializedBytes: bytes)
        else { preconditionFailure("the compiled-in descriptor set does not decode") }
        return Dictionary(set.file.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
    }()

    /// Fully qualified names of messages, enums, services and methods, to the file that defines each.
    private static let fileOfSymbol: [String: String] = {
        var index: [String: String] = [:]
        for file in files.values {
            let prefix = file.package.isEmpty ? "" : file.package + "."
            for service in file.service {
                index[prefix + service.name] = file.name
                for method in service.method {
                    index[prefix + service.name + "." + method.name] = file.name
                }
            }
            for type in file.enumType {
                index[prefix + type.name] = file.name
            }
            var messages = file.messageType.map { (prefix + $0.name, $0) }
            while let (name, message) = messages.popLast() {
                index[name] = file.name
                for type in message.enumType {
                    index[name + "." + type.name] = file.name
                }
                messages += message.nestedType.map { (name + "." + $0.name, $0) }
            }
        }
        return index
    }()

    /// The services listed, as this listener serves them.
    private let services: [String]

    init(services: [ServiceDescriptor]) {
        self.services = services.map(\.fullyQualifiedService).sorted()
    }

    /// Registers the service as `grpc.reflection.v1` and as its predecessor `v1alpha`, the same messages
    /// on the wire, which many clients still ask (grpcio-reflection, older grpcurl).
    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        let v1alpha = MethodDescriptor(
            service: ServiceDescriptor(fullyQualifiedService: "grpc.reflection.v1alpha.ServerReflection"),
            method: "ServerReflectionInfo",
            type: .bidirectionalStreaming
        )
        for descriptor in [Grpc_Reflection_V1_ServerReflection.Method.ServerReflectionInfo.descriptor, v1alpha] {
            router.registerHandler(
                forMethod: descriptor,
                deserializer: ProtobufDeserializer<Grpc_Reflection_V1_ServerReflectionRequest>(),
                serializer: ProtobufSerializer<Grpc_Reflection_V1_ServerReflectionResponse>(),
                handler: { request, context in
                    try await serverReflectionInfo(request: request, context: context)
                }
            )
        }
    }

    func serverReflectionInfo(
        request: StreamingServerRequest<Grpc_Reflection_V1_ServerReflectionRequest>,
        context: ServerContext
    ) async throws -> StreamingServerResponse<Grpc_Reflection_V1_ServerReflectionResponse> {
        StreamingServerResponse { writer in
            for try await asked in request.messages {
                var response = Grpc_Reflection_V1_ServerReflectionResponse()
                response.validHost = asked.host
                response.originalRequest = asked
                response.messageResponse = answer(asked.messageRequest)
                try await writer.write(response)
            }
            return [:]
        }
    }

    private func answer(
        _ asked: Grpc_Reflection_V1_ServerReflectionRequest.OneOf_MessageRequest?
    ) -> Grpc_Reflection_V1_ServerReflectionResponse.OneOf_MessageResponse {
        switch asked {
        case .listServices:
            var list = Grpc_Reflection_V1_ListServiceResponse()
            list.service = services.map { name in
                var service = Grpc_Reflection_V1_ServiceResponse()
                service.name = name
                return service
            }
            return .listServicesResponse(list)
        case .fileByFilename(let name):
            return fileResponse(name, asked: "file \(name)")
        case .fileContainingSymbol(let symbol):
            return fileResponse(Self.fileOfSymbol[symbol], asked: "symbol \(symbol)")
        case .allExtensionNumbersOfType(let type) where Self.fileOfSymbol[type] != nil:
            var numbers = Grpc_Reflection_V1_ExtensionNumberResponse()
            numbers.baseTypeName = type
            return .allExtensionNumbersResponse(numbers)
        case .allExtensionNumbersOfType(let type):
            return Self.notFound("type \(type)")
        case .fileContainingExtension(let asked):
            return Self.notFound("extension \(asked.extensionNumber) of \(asked.containingType)")
        case nil:
            var error = Grpc_Reflection_V1_ErrorResponse()
            error.errorCode = Int32(Status.Code.invalidArgument.rawValue)
            error.errorMessage = "The request asks for nothing"
            return .errorResponse(error)
        }
    }

    /// The file and, after it, every file it imports, directly or not.
    private func fileResponse(
        _ name: String?,
        asked: String
    ) -> Grpc_Reflection_V1_ServerReflectionResponse.OneOf_MessageResponse {
        guard let name, Self.files[name] != nil else { return Self.notFound(asked) }
        var sent: [String] = []
        var pending = [name]
        while let next = pending.popLast() {
            guard !sent.contains(next), let file = Self.files[next] else { continue }
            sent.append(next)
            pending += file.dependency
        }
        var response = Grpc_Reflection_V1_FileDescriptorResponse()
        response.fileDescriptorProto = sent.compactMap { try? Self.files[$0]?.serializedBytes() }
        return .fileDescriptorResponse(response)
    }

    private static func notFound(_ asked: String) -> Grpc_Reflection_V1_ServerReflectionResponse.OneOf_MessageResponse {
        var error = Grpc_Reflection_V1_ErrorResponse()
        error.errorCode = Int32(Status.Code.notFound.rawValue)
        error.errorMessage = "No \(asked) is served here"
        return .errorResponse(error)
    }
}
