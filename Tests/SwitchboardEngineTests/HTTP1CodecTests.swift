import CoreMetrics
import NIOCore
import NIOEmbedded
import NIOHTTP1
import SwitchboardHTTP1
import Testing

@testable import SwitchboardEngine

/// Parses `bytes` whole, then again fed one byte at a time; both must give the same parts.
private func parse(_ bytes: String, maxHeadBytes: Int = 16 * 1024) throws -> [HTTP1RequestParser.Part] {
    func run(_ pieces: [ByteBuffer]) throws -> [HTTP1RequestParser.Part] {
        var parser = HTTP1RequestParser(maxHeadBytes: maxHeadBytes)
        var buffer = ByteBuffer()
        var parts: [HTTP1RequestParser.Part] = []
        for var piece in pieces {
            buffer.writeBuffer(&piece)
            while let part = try parser.next(from: &buffer) {
                parts.append(part)
            }
        }
        return parts
    }
    let whole = try run([ByteBuffer(string: bytes)])
    let bytewise = try run(bytes.utf8.map { ByteBuffer(bytes: [$0]) })
    #expect(merged(whole) == merged(bytewise))
    return merged(whole)
}

/// Adjacent body parts joined, so parts compare whatever the reads were.
private func merged(_ parts: [HTTP1RequestParser.Part]) -> [HTTP1RequestParser.Part] {
    var result: [HTTP1RequestParser.Part] = []
    for part in parts {
        if case .body(var next) = part, case .body(var body)? = result.last {
            body.writeBuffer(&next)
            result[result.count - 1] = .body(body)
        } else {
            result.append(part)
        }
    }
    return result
}

private func refusal(_ bytes: String) -> HTTP1RequestParser.Failure? {
    do {
        _ = try parse(bytes)
        return nil
    } catch {
        return error as? HTTP1RequestParser.Failure
    }
}

@Suite struct HTTP1RequestParserTests {
    @Test func parsesAHeadWithoutBody() throws {
        let parts = try parse("GET /a?b=c HTTP/1.1\r\nHost: x\r\nX-Two:  spaced value \t\r\n\r\n")
        guard case .head(let head) = parts.first else { throw ParseFailure() }
        #expect(head.method == .GET)
        #expect(head.uri == "/a?b=c")
        #expect(head.version == .http1_1)
        #expect(head.headers["x-two"] == ["spaced value"])
        #expect(parts.count == 2 && parts.last == .end(nil))
    }

    @Test func framesContentLengthAndChunkedBodies() throws {
        let fixed = try parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        #expect(Array(fixed.dropFirst()) == [.body(ByteBuffer(string: "hello")), .end(nil)])
        let chunked = try parse(
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                + "5;ext=1\r\nhello\r\nA\r\n, world!!!\r\n0\r\nTrailer: t\r\n\r\n"
        )
        #expect(Array(chunked.dropFirst()) == [.body(ByteBuffer(string: "hello, world!!!")), .end(nil)])
    }

    @Test func parsesPipelinedRequestsAndSkipsEmptyLinesBetween() throws {
        let parts = try parse(
            "GET /1 HTTP/1.1\r\nHost: x\r\n\r\n\r\nPOST /2 HTTP/1.0\r\nContent-Length: 2\r\n\r\nokGET /3 HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        let uris = parts.compactMap { part -> String? in
            if case .head(let head) = part { head.uri } else { nil }
        }
        #expect(uris == ["/1", "/2", "/3"])
        #expect(parts.count == 7)
    }

    @Test(arguments: [
        ("GET / HTTP/1.1\r\n\r\n", HTTP1RequestParser.Failure.invalidHost),
        ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", .invalidHost),
        ("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", .invalidHost),
        ("GET / HTTP/1.1\r\nHost: a/b@c\r\n\r\n", .invalidHost),
        ("GET  / HTTP/1.1\r\nHost: x\r\n\r\n", .invalidRequestLine),
        ("GET / HTTP/1.1 \r\nHost: x\r\n\r\n", .invalidRequestLine),
        ("GET /\u{7F} HTTP/1.1\r\nHost: x\r\n\r\n", .invalidRequestLine),
        ("G(T / HTTP/1.1\r\nHost: x\r\n\r\n", .invalidRequestLine),
        ("GET / HTTP/9.9 extra\r\n\r\n", .invalidRequestLine),
        ("INVALID CONNECTION PREFACE\r\n\r\n", .notHTTP),
        ("GET / HTTP/2.0\r\nHost: x\r\n\r\n", .unsupportedVersion),
        ("GET / HTTP/1.1\nHost: x\r\n\r\n", .invalidRequestLine),
        ("GET / HTTP/1.1\r\nHost : x\r\n\r\n", .invalidHeader),
        ("GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n c\r\n\r\n", .invalidHeader),
        ("GET / HTTP/1.1\r\nHost: x\r\nA: b\rc\r\n\r\n", .invalidHeader),
        ("GET / HTTP/1.1\r\nHost: x\r\nA: b\0c\r\n\r\n", .invalidHeader),
        ("GET / HTTP/1.1\r\nHost: x\r\n: empty\r\n\r\n", .invalidHeader),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", .invalidContentLength),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4, 4\r\n\r\n", .invalidContentLength),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +4\r\n\r\n", .invalidContentLength),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\n", .ambiguousFraming),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", .ambiguousFraming),
        ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", .ambiguousFraming),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n", .invalidTransferEncoding),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n", .invalidTransferEncoding),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            .invalidTransferEncoding
        ),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", .unsupportedTransferCoding),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", .invalidChunk),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", .invalidChunk),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n", .invalidChunk),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000\r\n", .invalidChunk),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nBad Trailer: x\r\n\r\n", .invalidHeader),
    ])
    func refuses(request: String, failure: HTTP1RequestParser.Failure) {
        #expect(refusal(request) == failure, "\(request.debugDescription)")
    }

    @Test func refusesAHeadOverTheLimitEvenBeforeItEnds() {
        #expect(throws: HTTP1RequestParser.Failure.headTooLarge) {
            try parse("GET / HTTP/1.1\r\nHost: x\r\nX: \(String(repeating: "a", count: 300))", maxHeadBytes: 256)
        }
        let fields = (0..<200).map { "F\($0): v\r\n" }.joined()
        #expect(refusal("GET / HTTP/1.1\r\nHost: x\r\n\(fields)\r\n") == .headTooLarge)
    }

    @Test func answersALaterHTTP1VersionAsHTTP11AndHTTP10WithoutHost() throws {
        guard case .head(let head) = try parse("GET / HTTP/1.7\r\nHost: x\r\n\r\n").first else { throw ParseFailure() }
        #expect(head.version == .http1_1)
        guard case .head(let old) = try parse("GET / HTTP/1.0\r\n\r\n").first else { throw ParseFailure() }
        #expect(old.version == .http1_0)
    }

    struct ParseFailure: Error {}
}

@Suite struct HTTP1ServerCodecTests {
    /// Counts the `read()` calls that reach the socket.
    final class ReadCounter: ChannelOutboundHandler {
        typealias OutboundIn = Never
        var reads = 0
        func read(context: ChannelHandlerContext) {
            reads += 1
            context.read()
        }
    }

    private func connection() throws -> (EmbeddedChannel, ReadCounter) {
        let counter = ReadCounter()
        let channel = EmbeddedChannel()
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        let refusals = Refusals(metrics: EngineMetrics(factory: NOOPMetricsHandler.instance), accessLog: nil)
        try channel.pipeline.syncOperations.addHandlers([
            counter, HTTP1ServerCodec(maxHeadBytes: 1024, refusals: refusals),
        ])
        return (channel, counter)
    }

    private func written(_ channel: EmbeddedChannel) throws -> String {
        var text = ""
        while let data = try channel.readOutbound(as: IOData.self) {
            if case .byteBuffer(let buffer) = data {
                text += String(buffer: buffer)
            }
        }
        return text
    }

    private func heads(_ channel: EmbeddedChannel) throws -> [String] {
        var uris: [String] = []
        while let part = try channel.readInbound(as: HTTPServerRequestPart.self) {
            if case .head(let head) = part { uris.append(head.uri) }
        }
        return uris
    }

    /// Writes a response as the request handler does: head and body, then the end with a flush.
    private func respond(_ channel: EmbeddedChannel, _ headers: HTTPHeaders, body: String?) throws {
        let head = HTTPResponseHead(version: .http1_1, status: .ok, headers: headers)
        channel.write(HTTPServerResponsePart.head(head), promise: nil)
        if let body {
            channel.write(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: body))), promise: nil)
        }
        try channel.writeAndFlush(HTTPServerResponsePart.end(nil)).wait()
    }

    @Test func refusesWithJSONAndCloses() throws {
        let (channel, _) = try connection()
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n"))
        let answer = try written(channel)
        #expect(answer.hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
        #expect(answer.contains("Connection: close\r\n"))
        #expect(
            answer.hasSuffix(
                #"{"error":{"code":"invalid_header","message":"A header field is malformed: invalid characters, whitespace before the colon, or obs-fold"}}"#
            )
        )
        #expect(!channel.isActive)
    }

    @Test func holdsAPipelinedRequestAndReadsUntilTheResponseBeforeItEnds() throws {
        let (channel, counter) = try connection()
        try channel.writeInbound(
            ByteBuffer(string: "GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
        )
        #expect(try heads(channel) == ["/1"])
        let readsBefore = counter.reads
        channel.read()
        #expect(counter.reads == readsBefore)  // held: a request waits
        try respond(channel, ["content-length": "2"], body: "one")
        #expect(try heads(channel) == ["/2"])
        #expect(counter.reads == readsBefore + 1)  // the held read goes out once the bytes are taken
        channel.read()
        #expect(counter.reads == readsBefore + 2)  // one request in flight, nothing buffered: reading goes on
    }

    @Test func writesHeadSmallBodyAndEndAsOneBufferWithADate() throws {
        let (channel, _) = try connection()
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
        _ = try heads(channel)
        try respond(channel, ["content-length": "5"], body: "hello")
        let first = try channel.readOutbound(as: IOData.self)
        #expect(try channel.readOutbound(as: IOData.self) == nil)
        guard case .byteBuffer(let buffer) = first else { throw HTTP1RequestParserTests.ParseFailure() }
        let text = String(buffer: buffer)
        #expect(text.hasPrefix("HTTP/1.1 200 OK\r\ncontent-length: 5\r\ndate: "))
        #expect(text.hasSuffix(" GMT\r\n\r\nhello"))
    }

    @Test func chunksABodyWithoutLengthAndSendsNoneForHEAD() throws {
        let (channel, _) = try connection()
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
        try respond(channel, [:], body: "hello")
        let chunked = try written(channel)
        #expect(chunked.contains("transfer-encoding: chunked\r\n"))
        #expect(chunked.hasSuffix("\r\n\r\n5\r\nhello\r\n0\r\n\r\n"))
        try channel.writeInbound(ByteBuffer(string: "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"))
        try respond(channel, ["content-length": "5"], body: "hello")
        #expect(try written(channel).hasSuffix(" GMT\r\n\r\n"))
    }

    @Test func anHTTP10ResponseWithoutLengthEndsWithTheConnection() throws {
        let (channel, _) = try connection()
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"))
        try respond(channel, [:], body: "hello")
        let answer = try written(channel)
        #expect(answer.contains("connection: close\r\n"))
        #expect(answer.hasSuffix("\r\n\r\nhello"))
        #expect(!channel.isActive)
    }

    @Test func bytesAfterASwitchAreHandedOnWhenTheCodecLeaves() throws {
        let (channel, _) = try connection()
        try channel.writeInbound(
            ByteBuffer(string: "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: test\r\nConnection: upgrade\r\n\r\nRAW")
        )
        _ = try heads(channel)
        let head = HTTPResponseHead(version: .http1_1, status: .switchingProtocols, headers: ["upgrade": "test"])
        try channel.writeOutbound(HTTPServerResponsePart.head(head))
        #expect(try written(channel).hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"))
        let codec = try channel.pipeline.syncOperations.handler(type: HTTP1ServerCodec.self)
        try channel.pipeline.syncOperations.removeHandler(codec).wait()
        #expect(try channel.readInbound(as: ByteBuffer.self) == ByteBuffer(string: "RAW"))
    }
}
