import NIOCore

/// Sits between the socket (or TLS) and swift-nio-http2's connection handler and closes the connection
/// once a `GOAWAY` with an error code has gone out. RFC 9113 §5.4.1: after a `GOAWAY` for an error condition
/// the endpoint MUST close the TCP connection. swift-nio-http2 writes that frame and leaves closing to its
/// user; left open, the connection would go on answering the peer's next frames (with `RST_STREAM`s) after
/// telling it the connection is over, which strict peers treat as a protocol error of their own.
///
/// swift-nio-http2 writes every frame header with its payload as one buffer (a `DATA` payload goes
/// separately, after its header), so a `GOAWAY` is recognised by its whole frame: a 9-byte header of type
/// 0x7 on stream 0 whose length matches the buffer, then the last stream id and the error code.
final class ErrorGoAwayCloser: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    /// An error `GOAWAY` has been written: nothing more is, and the next flush closes.
    private var closing = false

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if closing {
            promise?.fail(ChannelError.outputClosed)
            return
        }
        if case .byteBuffer(let buffer) = unwrapOutboundIn(data), Self.isErrorGoAway(buffer) {
            closing = true
        }
        context.write(data, promise: promise)
    }

    func flush(context: ChannelHandlerContext) {
        context.flush()
        if closing {
            context.close(promise: nil)
        }
    }

    /// Whether `buffer` is exactly one `GOAWAY` frame whose error code is not `NO_ERROR`.
    static func isErrorGoAway(_ buffer: ByteBuffer) -> Bool {
        let start = buffer.readerIndex
        // The type byte first: every other frame is passed over after one read.
        guard buffer.readableBytes >= 17, buffer.getInteger(at: start + 3, as: UInt8.self) == 0x7,
            let lengthHigh = buffer.getInteger(at: start, as: UInt8.self),
            let lengthLow = buffer.getInteger(at: start + 1, as: UInt16.self),
            let stream = buffer.getInteger(at: start + 5, as: UInt32.self),
            let errorCode = buffer.getInteger(at: start + 13, as: UInt32.self)
        else { return false }
        let length = Int(lengthHigh) << 16 | Int(lengthLow)
        return stream & 0x7FFF_FFFF == 0 && length == buffer.readableBytes - 9 && errorCode != 0
    }
}
