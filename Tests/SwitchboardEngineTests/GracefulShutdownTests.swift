import Testing

@testable import SwitchboardEngine

@Suite struct GracefulShutdownTests {
    @Test func requestInFlightCompletesAndNewConnectionsAreRefused() async throws {
        try await TestServer.run { port, control in
            let inFlight = try await RawConnection.connect(port: port)
            try await inFlight.send("GET /slow?ms=500 HTTP/1.1\r\nHost: x\r\n\r\n")
            try await Task.sleep(for: .milliseconds(100))
            await control.shutdown()
            // The listener closes as shutdown begins; on a loaded machine that may take a moment.
            var refused = false
            for _ in 0..<40 where !refused {
                do {
                    _ = try await RawConnection.connect(port: port)
                    try await Task.sleep(for: .milliseconds(50))
                } catch {
                    refused = true
                }
            }
            #expect(refused)
            let text = try await inFlight.receive { $0.hasSuffix("slow done") }
            #expect(text.hasPrefix("HTTP/1.1 200"))
            #expect(text.lowercased().contains("connection: close"))
            #expect(try await inFlight.waitForClose())
        }
    }

    @Test func drainTimeoutClosesRequestsThatOutlastIt() async throws {
        let started = ContinuousClock.now
        try await TestServer.run(configure: { $0.drainTimeout = .milliseconds(300) }) { port, control in
            let stuck = try await RawConnection.connect(port: port)
            try await stuck.send("GET /slow?ms=20000 HTTP/1.1\r\nHost: x\r\n\r\n")
            try await Task.sleep(for: .milliseconds(100))
            await control.shutdown()
            #expect(try await stuck.waitForClose(timeout: .seconds(5)))
        }
        #expect(ContinuousClock.now - started < .seconds(5))
    }

    @Test func aHalfSentHeadIsClosedWithoutAnAnswer() async throws {
        try await TestServer.run(configure: { $0.drainTimeout = .milliseconds(300) }) { port, control in
            let slow = try await RawConnection.connect(port: port)
            try await slow.send("GET /hello HTTP/1.1\r\nHost: x\r\n")
            try await Task.sleep(for: .milliseconds(100))
            await control.shutdown()
            #expect(try await slow.waitForClose(timeout: .seconds(5)))
        }
    }
}
