import Foundation
import Logging
import SwitchboardAPI
import SwitchboardSQLite
import Testing

@testable import Switchboard

/// The OpenAPI description cannot drift from the router: every route is described, and nothing else.
@Suite struct OpenAPITests {
    @Test func theDescriptionNamesExactlyTheRoutes() async throws {
        var settings = ServeSettings()
        settings.grpc = nil
        settings.dataDirectory =
            FileManager.default.temporaryDirectory.appendingPathComponent("openapi-\(UUID().uuidString)").path
        let node = try await ServeNode(settings: settings, logger: Logger(label: "test"))
        let routed = Set(node.routes.map { "\($0.method.rawValue) \($0.pattern)" })

        let document = try #require(
            try JSONSerialization.jsonObject(with: Data(OperationsAPI.openAPIDocument)) as? [String: Any]
        )
        #expect(document["openapi"] as? String == "3.1.0")
        let paths = try #require(document["paths"] as? [String: [String: Any]])
        let methods: Set<String> = ["get", "put", "post", "delete", "options", "head", "patch"]
        let described = Set(
            paths.flatMap { path, operations in
                operations.keys.filter(methods.contains).map { "\($0.uppercased()) \(path)" }
            }
        )
        #expect(described.subtracting(routed).isEmpty, "described but not routed")
        #expect(routed.subtracting(described).isEmpty, "routed but not described")
        try (node.store as! SQLiteStore).close()
    }
}
