import CoreMetrics
import Foundation
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOHTTP2
import Testing

@testable import SwitchboardEngine

@Suite struct TimeoutStateMachineTests {
    typealias Machine = ConnectionTimeoutHandler.StateMachine

    @Test func idleUntilBytesThenHeaderTimerUntilHead() {
        var machine = Machine()
        #expect(machine.timer == .idle)
        #expect(machine.requestBytesArrived() == .headerRead)
        #expect(machine.headReceived() == .none)
        #expect(machine.responseEnded() == .idle)
    }

    @Test func noTimerWhilePipelinedRequestsAreInFlight() {
        var machine = Machine()
        _ = machine.requestBytesArrived()
        _ = machine.headReceived()
        _ = machine.headReceived()
        #expect(machine.responseEnded() == .none)
        #expect(machine.responseEnded() == .idle)
    }

    @Test func partialNextHeadAfterResponseArmsHeaderTimer() {
        var machine = Machine()
        _ = machine.headReceived()
        _ = machine.requestBytesArrived()
        #expect(machine.responseEnded() == .headerRead)
    }
}

@Suite struct RouterTests {
    let router: Router = {
        var router = Router(defaultMaxBodyBytes: 100)
        router.add(.GET, "/v1/topics/{topic}/messages") { _ in .text("get") }
        router.add(.POST, "/v1/topics/{topic}/messages", maxBodyBytes: 7) { _ in .text("post") }
        return router
    }()

    private func head(_ method: HTTPMethod, _ uri: String) -> HTTPRequestHead {
        HTTPRequestHead(version: .http1_1, method: method, uri: uri)
    }

    @Test func matchesParametersAndRouteBodyLimit() {
        guard case .handler(_, let limit, let parameters) = router.route(head(.POST, "/v1/topics/a%2Eb/messages?x=1"))
        else {
            Issue.record("no match")
            return
        }
        #expect(limit == 7)
        #expect(parameters == ["topic": "a.b"])
    }

    @Test func headFallsBackToGet() {
        guard case .handler(_, let limit, _) = router.route(head(.HEAD, "/v1/topics/t/messages")) else {
            Issue.record("no match")
            return
        }
        #expect(limit == 100)
    }

    @Test func unknownPathIs404AndWrongMethodIs405() {
        guard case .failure(let missing) = router.route(head(.GET, "/v1/nothing")) else {
            Issue.record("matched")
            return
        }
        #expect(missing.status == .notFound)
        guard case .failure(let wrong) = router.route(head(.DELETE, "/v1/topics/t/messages")) else {
            Issue.record("matched")
            return
        }
        #expect(wrong.status == .methodNotAllowed)
        #expect(wrong.headers["Allow"] == ["GET, POST, HEAD"])
    }

    @Test func queryIsDecoded() {
        let request = Request(head: head(.GET, "/x?after=5&name=a+b%21&flag"))
        #expect(request.query == ["after": "5", "name": "a b!", "flag": ""])
        #expect(request.path == "/x")
    }
}

@Suite struct WorkerPoolTests {
    @Test func runsWorkOffTheCallerAndReturnsResults() async throws {
        let pool = WorkerPool(threads: 2)
        let results = try await withThrowingTaskGroup(of: Int.self) { group in
            for value in 1...8 {
                group.addTask { try await pool.run { (1...value).reduce(0, +) } }
            }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(results.sorted() == [1, 3, 6, 10, 15, 21, 28, 36])
    }
}

@Suite struct PriorKnowledgeTests {
    private func version(_ text: String) -> PriorKnowledgeDetector.Version? {
        PriorKnowledgeDetector.version(of: ByteBuffer(string: text))
    }

    @Test func thePrefaceIsHTTP2AndItsPrefixesWait() {
        #expect(version("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") == .http2)
        #expect(version("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\u{12}\u{4}") == .http2)
        #expect(version("PRI * HTTP/2") == nil)
        #expect(version("") == nil)
    }

    @Test func anythingElseIsHTTP1AtTheFirstByteThatDiffers() {
        #expect(version("G") == .http1)
        #expect(version("POST / HTTP/1.1\r\n") == .http1)
        #expect(version("PRI * HTTP/1.1\r\n") == .http1)
    }
}

@Suite struct RequestJourneyTests {
    @Test func aTLSConnectionsFirstRequestHasAHandshakeStage() {
        let accepted = NIODeadline.uptimeNanoseconds(1_000)
        let journey = RequestJourney(
            started: accepted,
            handshakeCompleted: accepted + .microseconds(300),
            firstByte: accepted + .microseconds(400),
            headParsed: accepted + .microseconds(450)
        )
        let stages = Dictionary(uniqueKeysWithValues: journey.stageDurations)
        #expect(stages[.handshake] == .microseconds(300))
        #expect(stages[.read] == .microseconds(100))
        #expect(stages[.parse] == .microseconds(50))
    }

    @Test func aCleartextRequestHasNone() {
        let accepted = NIODeadline.uptimeNanoseconds(1_000)
        let journey = RequestJourney(started: accepted, firstByte: accepted + .microseconds(5), headParsed: accepted)
        #expect(!journey.stageDurations.contains { $0.0 == .handshake })
    }
}

@Suite struct ErrorGoAwayCloserTests {
    /// A server connection as the engine builds it: the closer, then swift-nio-http2's handler.
    private func serverConnection() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ErrorGoAwayCloser())
        try channel.pipeline.syncOperations.addHandler(NIOHTTP2Handler(mode: .server))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        var preface = ByteBuffer(string: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        preface.writeBytes([0, 0, 0, 0x4, 0, 0, 0, 0, 0])  // an empty SETTINGS frame
        try channel.writeInbound(preface)
        return channel
    }

    @Test func aConnectionErrorClosesTheConnectionAfterItsGoAway() throws {
        let channel = try serverConnection()
        // PING on a stream is a connection error (RFC 9113 §6.7): GOAWAY PROTOCOL_ERROR, then close.
        let ping: [UInt8] = [0, 0, 8, 0x6, 0, 0, 0, 0, 1] + Array(repeating: 0, count: 8)
        #expect(throws: (any Error).self) { try channel.writeInbound(ByteBuffer(bytes: ping)) }
        var written: [ByteBuffer] = []
        while let buffer = try channel.readOutbound(as: IOData.self) {
            if case .byteBuffer(let bytes) = buffer { written.append(bytes) }
        }
        #expect(written.contains(where: ErrorGoAwayCloser.isErrorGoAway))
        #expect(!channel.isActive)
    }

    @Test func aGracefulGoAwayLeavesTheConnectionOpen() throws {
        let channel = try serverConnection()
        let goAway = HTTP2Frame(
            streamID: .rootStream,
            payload: .goAway(lastStreamID: .maxID, errorCode: .noError, opaqueData: nil)
        )
        try channel.writeOutbound(goAway)
        #expect(channel.isActive)
        _ = try? channel.finish()
    }
}

@Suite struct BufferedLogHandlerTests {
    /// What a pipe received so far.
    private func drain(_ pipe: Pipe) -> String {
        let fd = pipe.fileHandleForReading.fileDescriptor
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        var text = ""
        var chunk = [UInt8](repeating: 0, count: 65536)
        while case let count = read(fd, &chunk, chunk.count), count > 0 {
            text += String(decoding: chunk[..<count], as: UTF8.self)
        }
        return text
    }

    @Test func accessLinesWaitInTheirThreadsBufferAndLogLinesGoAtOnce() async throws {
        let pipe = Pipe()
        let output = LogOutput(fileDescriptor: pipe.fileHandleForWriting.fileDescriptor, interval: .seconds(3600))
        let access = AccessLog(label: "test", output: output)
        let plain = Logger(label: "test") { BufferedLogHandler(label: $0, level: .info, output: output) }
        await withTaskGroup(of: Void.self) { group in
            for task in 0..<4 {
                group.addTask {
                    for line in 0..<100 {
                        access.write(
                            "GET /\(task)/\(line) 200",
                            fields: ["a": "1", "bytes_out": "12"],
                            source: "Tests"
                        )
                    }
                }
            }
        }
        #expect(drain(pipe).isEmpty)  // all still buffered: no timer has fired, no buffer is full
        output.flush()
        let lines = drain(pipe).split(separator: "\n")
        #expect(lines.count == 400)  // (under a pipe's 64 KiB, which nothing reads meanwhile)
        #expect(
            lines.allSatisfy { $0.contains(" info test: a=1 bytes_out=12 log=access [Tests] GET /") }
        )
        plain.notice("started", metadata: ["port": "8080"])
        #expect(drain(pipe).hasSuffix(" notice test: port=8080 [SwitchboardEngineTests] started\n"))
    }
}

@Suite struct SlowRequestsTests {
    /// A request that began at `start` ms of uptime and took `milliseconds`, the most of it processing.
    private func journey(start: Int64, milliseconds: Int64) -> RequestJourney {
        let began = NIODeadline.uptimeNanoseconds(UInt64(start * 1_000_000))
        var journey = RequestJourney(started: began, firstByte: began, headParsed: began)
        journey.bodyRead = began
        journey.responseStarted = began + .milliseconds(milliseconds)
        journey.responseFlushed = began + .milliseconds(milliseconds)
        return journey
    }

    private let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/v1/topics/t/messages?access_token=x")

    @Test func keepsTheSlowestOfTheWindowWithoutTheirQueries() {
        let slow = SlowRequests(capacity: 3, window: .seconds(60))
        for (index, milliseconds) in [5, 50, 1, 20, 7, 500].enumerated() {
            slow.consider(journey(start: Int64(index) * 10, milliseconds: Int64(milliseconds)), head: head, status: .ok)
        }
        let kept = slow.slowest(at: .uptimeNanoseconds(1_000_000_000))
        #expect(kept.map(\.total) == [.milliseconds(500), .milliseconds(50), .milliseconds(20)])
        #expect(kept.allSatisfy { $0.path == "/v1/topics/t/messages" })
        #expect(kept[0].stages.last?.0 == .write && kept[0].stages.contains { $0 == (.process, .milliseconds(500)) })
    }

    @Test func fasterRequestsAfterASlowBurstShowOnceItLeavesTheWindow() {
        let slow = SlowRequests(capacity: 1, window: .seconds(60))  // slices of 10 s
        slow.consider(journey(start: 0, milliseconds: 900), head: head, status: .ok)
        slow.consider(journey(start: 100, milliseconds: 10), head: head, status: .ok)  // same slice: turned away
        slow.consider(journey(start: 12_000, milliseconds: 20), head: head, status: .ok)  // the next slice's slowest
        #expect(slow.slowest(at: .uptimeNanoseconds(13_000_000_000)).map(\.total) == [.milliseconds(900)])
        // The 900 ms request ended at 0.9 s and leaves the window at 60.9 s; the 20 ms one is still in it.
        #expect(slow.slowest(at: .uptimeNanoseconds(61_000_000_000)).map(\.total) == [.milliseconds(20)])
        #expect(slow.slowest(at: .uptimeNanoseconds(73_000_000_000)).isEmpty)
    }

    @Test func pathsLoseTheirQueryFragmentAndAuthority() {
        #expect(SlowRequests.path(of: "/v1/x?access_token=t#f") == "/v1/x")
        #expect(SlowRequests.path(of: "/a#frag") == "/a")
        #expect(SlowRequests.path(of: "http://user:pw@host:80/p?q") == "/p")
        #expect(SlowRequests.path(of: "/redirect/http://x") == "/redirect/http://x")
    }
}
