import Testing

@testable import SwitchboardEngine

/// Every limit and every malformed-request defence, each sent as raw bytes.
@Suite struct LimitTests {
    @Test func oversizedHeadIs431AndClose() async throws {
        try await TestServer.run(configure: { $0.limits.maxHeaderBytes = 2048 }) { port, _ in
            let connection = try await RawConnection.connect(port: port)
            let big = String(repeating: "a", count: 4096)
            try await connection.send("GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: \(big)\r\n\r\n")
            #expect(try await connection.waitForClose())
            #expect(connection.received.hasPrefix("HTTP/1.1 431"))
            #expect(connection.received.contains(#""code":"header_too_large""#))
        }
    }

    @Test func declaredBodyOverRouteLimitIs413AndClose() async throws {
        try await TestServer.run { port, _ in
            let connection = try await RawConnection.connect(port: port)
            try await connection.send("POST /tiny HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n123456789")
            #expect(try await connection.waitForClose())
            #expect(connection.received.hasPrefix("HTTP/1.1 413"))
            #expect(connection.received.contains(#""code":"body_too_large""#))
        }
    }

    @Test func chunkedBodyOverDefaultLimitIs413AndClose() async throws {
        try await TestServer.run { port, _ in
            let connection = try await RawConnection.connect(port: port)
            let chunk = String(repeating: "z", count: 1000)
            try await connection.send(
                "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n\(chunk)\r\n3e8\r\n\(chunk)\r\n0\r\n\r\n"
            )
            #expect(try await connection.waitForClose())
            #expect(connection.received.hasPrefix("HTTP/1.1 413"))
        }
    }

    @Test func slowHeadIs408AndClose() async throws {
        try await TestServer.run(configure: { $0.limits.headerReadTimeout = .milliseconds(300) }) { port, _ in
            let connection = try await RawConnection.connect(port: port)
            try await connection.send("GET /hello HTTP/1.1\r\nHost: x\r\n")
            #expect(try await connection.waitForClose())
            #expect(connection.received.hasPrefix("HTTP/1.1 408"))
            #expect(connection.received.contains(#""code":"header_timeout""#))
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
            let connection = try await RawConnection.connect(port: port)
            try await connection.send(bytes)
            #expect(try await connection.waitForClose(), "\(name): connection left open")
            #expect(connection.received.hasPrefix("HTTP/1.1 400"), "\(name): got \(connection.received)")
            #expect(connection.received.contains(#"{"error":{"code":"#), "\(name): no JSON error body")
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
