import Testing

@testable import SwitchboardEngine

/// Streaming routes: the handler reads the body as it arrives, under flow control.
@Suite struct StreamingBodyTests {
    @Test func aLargeBodyReachesASlowHandlerWhole() async throws {
        try await TestServer.run { port, _ in
            let connection = try await RawConnection.connect(port: port)
            let body = String(repeating: "b", count: 3_000_000)
            try await connection.send("PUT /count HTTP/1.1\r\nHost: x\r\nContent-Length: 3000000\r\n\r\n" + body)
            let answer = try await connection.receive(timeout: .seconds(20)) { $0.contains("bytes") }
            #expect(answer.hasPrefix("HTTP/1.1 200") && answer.contains("3000000 bytes"), "got \(answer)")
            // The connection stays usable for the next request.
            try await connection.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try await connection.receive { $0.contains("hello") }.contains("hello"))
        }
    }

    @Test func aBodyOverTheRouteLimitIs413AndClose() async throws {
        try await TestServer.run { port, _ in
            let chunk = String(repeating: "z", count: 60_000)
            var request = "PUT /count HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            for _ in 0..<80 {
                request += "ea60\r\n\(chunk)\r\n"
            }
            let connection = try await RawConnection.connect(port: port)
            try? await connection.send(request + "0\r\n\r\n")
            let answer = try await connection.receive(timeout: .seconds(10)) { $0.contains("body_too_large") }
            #expect(answer.hasPrefix("HTTP/1.1 413"), "got \(answer.prefix(300))")
            #expect(answer.lowercased().contains("connection: close"), "got \(answer.prefix(300))")
        }
    }

    @Test func anAnswerBeforeTheBodyEndsClosesTheConnection() async throws {
        try await TestServer.run { port, _ in
            try await expectRefusal(
                port: port,
                sending: "PUT /refuse HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc",
                status: 409,
                code: "refused"
            )
        }
    }
}
