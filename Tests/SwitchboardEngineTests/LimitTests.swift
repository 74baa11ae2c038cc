import Testing

@testable import SwitchboardEngine

/// Every limit and every malformed-request defence, each sent as raw bytes.
@Suite struct LimitTests {
    @Test func oversizedHeadIs431AndClose() async throws {
        try await TestServer.run(configure: { $0.limits.maxHeaderBytes = 2048 }) { port, _ in
            let big = String(repeating: "a", count: 4096)
            try await expectRefusal(
                port: port,
                sending: "GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: \(big)\r\n\r\n",
                status: 431,
                code: "header_too_large"
            )
        }
    }

    @Test func declaredBodyOverRouteLimitIs413AndClose() async throws {
        try await TestServer.run { port, _ in
            try await expectRefusal(
                port: port,
                sending: "POST /tiny HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n123456789",
                status: 413,
                code: "body_too_large"
            )
        }
    }

    @Test func chunkedBodyOverDefaultLimitIs413AndClose() async throws {
        try await TestServer.run { port, _ in
            let chunk = String(repeating: "z", count: 1000)
            try await expectRefusal(
                port: port,
                sending: "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + "3e8\r\n\(chunk)\r\n3e8\r\n\(chunk)\r\n0\r\n\r\n",
                status: 413,
                code: "body_too_large"
            )
        }
    }

    @Test func slowHeadIs408AndClose() async throws {
        try await TestServer.run(configure: { $0.limits.headerReadTimeout = .milliseconds(300) }) { port, _ in
            try await expectRefusal(
                port: port,
                sending: "GET /hello HTTP/1.1\r\nHost: x\r\n",
                status: 408,
                code: "header_timeout"
            )
        }
    }

    @Test func slowHeadAfterAKeepAliveRequestIsCutByTheShorterHeaderTimeout() async throws {
        try await TestServer.run(configure: {
            $0.limits.idleTimeout = .seconds(30)
            $0.limits.headerReadTimeout = .milliseconds(300)
        }) { port, _ in
            let connection = try await RawConnection.connect(port: port)
            try await connection.expectHello()
            try await connection.send("GET /hello HTTP/1.1\r\n")
            let started = ContinuousClock.now
            #expect(try await connection.waitForClose(timeout: .seconds(5)))
            #expect(ContinuousClock.now - started < .seconds(3))
            #expect(connection.received.contains("HTTP/1.1 408"))
        }
    }

    @Test func idleKeepAliveConnectionIsClosedQuietly() async throws {
        try await TestServer.run(configure: { $0.limits.idleTimeout = .milliseconds(300) }) { port, _ in
            let connection = try await RawConnection.connect(port: port)
            try await connection.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            try await connection.receive { $0.hasSuffix("hello") }
            #expect(try await connection.waitForClose(timeout: .seconds(3)))
            #expect(connection.received.components(separatedBy: "HTTP/1.1").count == 2)
        }
    }

    @Test func aConnectionThatSendsNothingIsClosedAfterTheIdleTimeout() async throws {
        try await TestServer.run(configure: { $0.limits.idleTimeout = .milliseconds(300) }) { port, _ in
            let connection = try await RawConnection.connect(port: port)
            #expect(try await connection.waitForClose(timeout: .seconds(3)))
            #expect(connection.received.isEmpty)
        }
    }

    @Test func longHandlerIsNotCutByIdleTimeout() async throws {
        try await TestServer.run(configure: { $0.limits.idleTimeout = .milliseconds(200) }) { port, _ in
            let connection = try await RawConnection.connect(port: port)
            try await connection.send("GET /slow?ms=600 HTTP/1.1\r\nHost: x\r\n\r\n")
            let text = try await connection.receive { $0.hasSuffix("slow done") }
            #expect(text.hasPrefix("HTTP/1.1 200"))
        }
    }

    @Test func atMaxConnectionsNewOnesWaitInsteadOfFailing() async throws {
        try await TestServer.run(configure: { $0.limits.maxConnections = 2 }) { port, _ in
            try await Self.thirdConnectionWaitsForAFreeSlot(port: port)
        }
    }

    private static func thirdConnectionWaitsForAFreeSlot(port: Int) async throws {
        let first = try await RawConnection.connect(port: port)
        let second = try await RawConnection.connect(port: port)
        try await first.expectHello()
        try await second.expectHello()
        let third = try await RawConnection.connect(port: port)
        try await third.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        let waiting = try await third.receive(timeout: .milliseconds(500)) { !$0.isEmpty }
        #expect(waiting.isEmpty)
        #expect(!third.isClosed)
        await first.close()
        let served = try await third.receive { $0.hasSuffix("hello") }
        #expect(served.hasPrefix("HTTP/1.1 200"))
        await second.close()
        await third.close()
    }

    /// Ambiguous or malformed framing: each is refused with 400 and the connection closed, so no
    /// request can be smuggled behind another.
    @Test(arguments: [
        (
            "both Content-Length and Transfer-Encoding",
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        ),
        (
            "duplicate Content-Length",
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd"
        ),
        (
            "conflicting Content-Length",
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde"
        ),
        (
            "comma-listed Content-Length",
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4, 5\r\n\r\nabcde"
        ),
        (
            "invalid chunk size",
            "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
        ),
        (
            "obs-fold",
            "GET /hello HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n  b\r\n\r\n"
        ),
        (
            "invalid header name",
            "GET /hello HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n"
        ),
        ("invalid request line", "GET /hello HTTP/9.9 extra\r\n\r\n"),
    ])
    func malformedRequestIs400AndClose(name: String, bytes: String) async throws {
        try await TestServer.run { port, _ in
            try await expectRefusal(port: port, sending: bytes, status: 400)
        }
    }
}

extension RawConnection {
    /// Sends `GET /hello` and waits for its answer.
    func expectHello() async throws {
        try await send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        let text = try await receive { $0.hasSuffix("hello") }
        #expect(text.hasSuffix("hello"))
    }
}

/// Sends `bytes` on a new connection and expects a JSON error with `status` and `code`, then a close.
func expectRefusal(
    port: Int,
    sending bytes: String,
    status: Int,
    code: String? = nil,
    sourceLocation: SourceLocation = #_sourceLocation
) async throws {
    let connection = try await RawConnection.connect(port: port)
    try await connection.send(bytes)
    #expect(try await connection.waitForClose(), "connection left open", sourceLocation: sourceLocation)
    let received = connection.received
    #expect(received.hasPrefix("HTTP/1.1 \(status)"), "got \(received)", sourceLocation: sourceLocation)
    let expectedBody = code.map { #"{"error":{"code":"\#($0)""# } ?? #"{"error":{"code":"#
    #expect(received.contains(expectedBody), "got \(received)", sourceLocation: sourceLocation)
}
