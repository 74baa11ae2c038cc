import Testing

@testable import SwitchboardEngine

/// HTTP/1.1 behaviour over real loopback sockets, with the exact bytes a client sends.
@Suite struct HTTPBehaviourTests {
    @Test func keepAliveServesSeveralRequestsOnOneConnection() async throws {
        try await TestServer.run { port, _ in
            let connection = try await RawConnection.connect(port: port)
            try await connection.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            try await connection.receive { $0.hasSuffix("hello") }
            try await connection.send("GET /items/42 HTTP/1.1\r\nHost: x\r\n\r\n")
            let text = try await connection.receive { $0.hasSuffix("item 42") }
            #expect(text.components(separatedBy: "HTTP/1.1 200 OK").count == 3)
            #expect(!connection.isClosed)
            await connection.close()
        }
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        try await TestServer.run { port, _ in
            let connection = try await RawConnection.connect(port: port)
            try await connection.send(
                "GET /slow?ms=100 HTTP/1.1\r\nHost: x\r\n\r\nGET /items/1 HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
            )
            let text = try await connection.receive { $0.hasSuffix("hello") }
            let slow = try #require(text.range(of: "slow done"))
            let item = try #require(text.range(of: "item 1"))
            let hello = try #require(text.range(of: "hello"))
            #expect(slow.lowerBound < item.lowerBound && item.lowerBound < hello.lowerBound)
            await connection.close()
        }
    }

    @Test func chunkedRequestBodyIsReassembled() async throws {
        try await TestServer.run { port, _ in
            let connection = try await RawConnection.connect(port: port)
            try await connection.send(
                "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
            )
            let text = try await connection.receive { $0.hasSuffix("hello world") }
            #expect(text.hasPrefix("HTTP/1.1 200 OK"))
            await connection.close()
        }
    }

    @Test func streamedResponseIsChunked() async throws {
        try await TestServer.run { port, _ in
            let connection = try await RawConnection.connect(port: port)
            try await connection.send("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
            let text = try await connection.receive { $0.hasSuffix("0\r\n\r\n") }
            #expect(text.lowercased().contains("transfer-encoding: chunked"))
            #expect(text.contains("part 1\n") && text.contains("part 3\n"))
            await connection.close()
        }
    }

    @Test func expectContinueGetsAGoAheadBeforeTheBody() async throws {
        try await TestServer.run { port, _ in
            let connection = try await RawConnection.connect(port: port)
            try await connection.send(
                "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
            )
            let interim = try await connection.receive { $0.contains("\r\n\r\n") }
            #expect(interim.hasPrefix("HTTP/1.1 100 Continue"))
            try await connection.send("hello")
            let text = try await connection.receive { $0.hasSuffix("hello") }
            #expect(text.contains("HTTP/1.1 200 OK"))
            await connection.close()
        }
    }

    @Test func unknownRouteIs404AndWrongMethodIs405WithAllow() async throws {
        try await TestServer.run { port, _ in
            let connection = try await RawConnection.connect(port: port)
            try await connection.send("GET /missing HTTP/1.1\r\nHost: x\r\n\r\n")
            let missing = try await connection.receive { $0.hasSuffix("}") }
            #expect(missing.hasPrefix("HTTP/1.1 404 Not Found"))
            #expect(missing.contains(#""code":"route_not_found""#))
            try await connection.send("DELETE /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            let wrong = try await connection.receive { $0.contains("405") && $0.hasSuffix("}") }
            #expect(wrong.contains("Allow: GET, HEAD"))
            #expect(wrong.contains(#""code":"method_not_allowed""#))
            await connection.close()
        }
    }

    @Test func handlerFailureIsA500WithJSONBody() async throws {
        try await TestServer.run { port, _ in
            let connection = try await RawConnection.connect(port: port)
            try await connection.send("GET /fail HTTP/1.1\r\nHost: x\r\n\r\n")
            let text = try await connection.receive { $0.hasSuffix("}") }
            #expect(text.hasPrefix("HTTP/1.1 500"))
            #expect(text.contains(#""code":"internal_error""#))
            await connection.close()
        }
    }

    @Test func headRequestGetsHeadersWithoutBody() async throws {
        try await TestServer.run { port, _ in
            let connection = try await RawConnection.connect(port: port)
            try await connection.send("HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            let text = try await connection.receive { $0.hasSuffix("hello") }
            #expect(text.components(separatedBy: "content-length: 5").count == 3)
            #expect(text.components(separatedBy: "hello").count == 2)
            await connection.close()
        }
    }

    @Test func http10RequestWithoutKeepAliveIsAnsweredAndClosed() async throws {
        try await TestServer.run { port, _ in
            let connection = try await RawConnection.connect(port: port)
            try await connection.send("GET /hello HTTP/1.0\r\n\r\n")
            #expect(try await connection.waitForClose())
            // A server answers with the highest HTTP/1.x it speaks (RFC 9110 §6.2).
            #expect(connection.received.hasPrefix("HTTP/1.1 200 OK"))
            #expect(connection.received.hasSuffix("hello"))
        }
    }

    @Test func handlerTaskIsCancelledWhenTheClientGoesAway() async throws {
        try await TestServer.run { port, _ in
            let before = await CancellationProbe.shared.cancellations
            let connection = try await RawConnection.connect(port: port)
            try await connection.send("GET /wait-for-cancel HTTP/1.1\r\nHost: x\r\n\r\n")
            try await Task.sleep(for: .milliseconds(100))
            await connection.close()
            let deadline = ContinuousClock.now + .seconds(5)
            while await CancellationProbe.shared.cancellations == before, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(await CancellationProbe.shared.cancellations == before + 1)
        }
    }

    @Test func allowedOriginsGetCORSHeadersOthersDoNot() async throws {
        try await TestServer.run(configure: {
            $0.crossOrigin = CrossOriginPolicy(allowedOrigins: ["http://app.example"])
        }) { port, _ in
            let connection = try await RawConnection.connect(port: port)
            try await connection.send("GET /hello HTTP/1.1\r\nHost: x\r\nOrigin: http://app.example\r\n\r\n")
            let allowed = try await connection.receive { $0.hasSuffix("hello") }
            #expect(allowed.contains("Access-Control-Allow-Origin: http://app.example"))
            try await connection.send("GET /hello HTTP/1.1\r\nHost: x\r\nOrigin: http://evil.example\r\n\r\n")
            let refused = try await connection.receive { $0.components(separatedBy: "hello").count == 3 }
            #expect(refused.components(separatedBy: "Access-Control-Allow-Origin").count == 2)
            await connection.close()
        }
    }

    @Test(arguments: ExecutionModel.allCases)
    func everyExecutionModelServesRequests(model: ExecutionModel) async throws {
        try await TestServer.run(configure: { $0.executionModel = model }) { port, _ in
            for _ in 0..<4 {
                let connection = try await RawConnection.connect(port: port)
                try await connection.send("GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                #expect(try await connection.waitForClose())
                #expect(connection.received.hasPrefix("HTTP/1.1 200 OK"))
                #expect(connection.received.lowercased().contains("connection: close"))
            }
        }
    }

    @Test func nagleAndFastOpenSettingsStillServe() async throws {
        try await TestServer.run(configure: {
            $0.tcpNoDelay = false
            $0.tcpFastOpenQueue = 16
        }) { port, _ in
            let connection = try await RawConnection.connect(port: port)
            try await connection.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try await connection.receive { $0.hasSuffix("hello") }.hasPrefix("HTTP/1.1 200"))
            await connection.close()
        }
    }
}
