import NIOCore
import NIOEmbedded
import NIOHTTP1
import SwitchboardAPI
import SwitchboardEngine
import Testing

/// Authorization fails closed: a check with no caller established refuses, and the open access layer
/// establishes `anyone` for every kind of route.
@Suite struct CallerTests {
    @Test func aCheckWithNoCallerRefuses() throws {
        #expect(Caller.current == nil)
        #expect(throws: HTTPError.self) { try Caller.authorize(.publish(topic: "orders")) }
        #expect(throws: HTTPError.self) { try Caller.required() }
        try Caller.$current.withValue(.anyone) {
            try Caller.authorize(.publish(topic: "orders"))
            try Caller.authorize(.useQueue("default"))
        }
    }

    @Test func openAccessEstablishesAnyoneForImmediateFutureAndAsyncRoutes() async throws {
        var router = Router()
        let checked: @Sendable () throws -> Response = {
            try Caller.authorize(.authenticated)
            return .json(ByteBuffer(string: "{}"))
        }
        router.addImmediate(.GET, "/immediate") { _ in try checked() }
        router.add(.GET, "/async") { _ in try checked() }
        router.add(
            Route(.GET, "/future", handler: .future { _, loop in loop.makeCompletedFuture(Result { try checked() }) })
        )
        let access = OpenAccess(wrapping: router)
        let loop = EmbeddedEventLoop()
        for path in ["/immediate", "/async", "/future"] {
            let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path)
            guard case .handler(let handler, _, _) = access.route(head) else {
                Issue.record("no route for \(path)")
                continue
            }
            let response = try await handler.respond(to: Request(head: head), body: nil, on: loop)
            #expect(response.status == .ok, "\(path)")
            // The router alone, without the access layer, establishes no caller.
            guard case .handler(let bare, _, _) = router.route(head) else { continue }
            await #expect(throws: HTTPError.self, "\(path)") {
                try await bare.respond(to: Request(head: head), body: nil, on: loop)
            }
        }
    }
}
