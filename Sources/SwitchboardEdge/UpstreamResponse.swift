import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import SwitchboardEngine

/// Receives one upstream response, part by part on the client connection's event loop, and turns it into
/// the engine's `Response` as soon as its head arrives. A small body of known length is collected and sent
/// whole (no task); any other body (chunked, SSE, large) is streamed: each chunk is handed to the
/// engine's writer and the next is read only once it has been written, so a slow client slows the
/// upstream instead of filling memory. The parts come from the edge's own upstream connections or, as
/// an AsyncHTTPClient delegate, from its pools.
final class UpstreamResponse: @unchecked Sendable {
    /// Bodies up to this size with a `Content-Length` are collected and sent whole.
    static let collectLimit = 256 * 1024

    private enum Mode {
        case awaitingHead
        case collecting(HTTPResponseHead, ByteBuffer)
        case streaming(AsyncThrowingStream<(ByteBuffer, EventLoopPromise<Void>), any Error>.Continuation)
        case done
    }

    private let eventLoop: any EventLoop
    private let isHead: Bool
    private let answer: EventLoopPromise<SwitchboardEngine.Response>
    private let finished: @Sendable () -> Void
    /// Stops the exchange when the client goes while the body streams.
    var cancel: @Sendable () -> Void = {}
    private var mode = Mode.awaitingHead
    /// Whether the client's response has been decided (a head arrived, or the exchange failed).
    private(set) var hasAnswered = false
    /// Set when the first-byte timer cancelled the exchange.
    var timedOut = false

    /// - Parameters:
    ///   - answer: completed with the response for the client, or failed when no head came.
    ///   - finished: called once the exchange with the upstream is over, however it ended.
    init(
        on eventLoop: any EventLoop,
        isHead: Bool,
        answer: EventLoopPromise<SwitchboardEngine.Response>,
        finished: @escaping @Sendable () -> Void
    ) {
        self.eventLoop = eventLoop
        self.isHead = isHead
        self.answer = answer
        self.finished = finished
    }

    func receiveHead(_ head: HTTPResponseHead) {
        hasAnswered = true
        let length = head.headers.first(name: "content-length").flatMap(Int.init)
        if isHead || head.status == .noContent || head.status == .notModified
            || length.map({ $0 <= Self.collectLimit }) == true
        {
            mode = .collecting(head, ByteBuffer())
            return
        }
        let (chunks, continuation) = AsyncThrowingStream<(ByteBuffer, EventLoopPromise<Void>), any Error>.makeStream()
        let cancel = self.cancel
        mode = .streaming(continuation)
        answer.succeed(
            SwitchboardEngine.Response(
                status: head.status,
                headers: ProxyHeaders.removingHopByHop(head.headers),
                body: .stream { writer in
                    do {
                        for try await (chunk, written) in chunks {
                            do {
                                try await writer.write(chunk)
                                written.succeed()
                            } catch {
                                written.fail(error)
                                throw error
                            }
                        }
                    } catch {
                        cancel()  // The client went: the upstream is not read further.
                        throw error
                    }
                }
            )
        )
    }

    /// A part of the body; the next may be read once the returned future completes.
    func receiveBody(_ buffer: ByteBuffer) -> EventLoopFuture<Void> {
        switch mode {
        case .collecting(let head, var body):
            mode = .done  // `body` is now the only holder of its storage: written in place, not copied
            if body.readableBytes == 0 {
                body = buffer
            } else {
                body.writeImmutableBuffer(buffer)
            }
            mode = .collecting(head, body)
            return eventLoop.makeSucceededVoidFuture()
        case .streaming(let continuation):
            let written = eventLoop.makePromise(of: Void.self)
            if case .terminated = continuation.yield((buffer, written)) {
                written.fail(CancellationError())
            }
            return written.futureResult
        case .awaitingHead, .done:
            return eventLoop.makeSucceededVoidFuture()
        }
    }

    func receiveError(_ error: any Error) {
        hasAnswered = true
        switch mode {
        case .awaitingHead, .collecting:
            answer.fail(error)
        case .streaming(let continuation):
            continuation.finish(throwing: error)
        case .done:
            return
        }
        mode = .done
        finished()
    }

    func receiveEnd() {
        switch mode {
        case .collecting(let head, let body):
            answer.succeed(
                SwitchboardEngine.Response(
                    status: head.status,
                    headers: ProxyHeaders.removingHopByHop(head.headers),
                    body: .buffer(body)
                )
            )
        case .streaming(let continuation):
            continuation.finish()
        case .awaitingHead, .done:
            return
        }
        mode = .done
        finished()
    }
}

/// AsyncHTTPClient's view of an `UpstreamResponse`.
final class UpstreamResponseDelegate: HTTPClientResponseDelegate {
    typealias Response = Void

    let response: UpstreamResponse

    init(_ response: UpstreamResponse) {
        self.response = response
    }

    func didReceiveHead(task: HTTPClient.Task<Void>, _ head: HTTPResponseHead) -> EventLoopFuture<Void> {
        response.receiveHead(head)
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didReceiveBodyPart(task: HTTPClient.Task<Void>, _ buffer: ByteBuffer) -> EventLoopFuture<Void> {
        response.receiveBody(buffer)
    }

    func didReceiveError(task: HTTPClient.Task<Void>, _ error: any Error) {
        response.receiveError(error)
    }

    func didFinishRequest(task: HTTPClient.Task<Void>) throws {
        response.receiveEnd()
    }
}
