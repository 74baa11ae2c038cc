import NIOCore
import NIOHTTP1

/// Answers requests the HTTP parser refuses with a JSON error and `Connection: close`; the decoder
/// closes the connection right after. Oversized heads get 431, every other parse failure 400. A head left
/// incomplete by a connection that is closing (the peer went, or shutdown closed it) gets no answer.
final class ProtocolErrorHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let refusals: Refusals
    /// A response has begun and not ended, so no error response can be written.
    private var responseInProgress = false

    init(refusals: Refusals) {
        self.refusals = refusals
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let parserError = error as? HTTPParserError, !responseInProgress, context.channel.isActive {
            refusals.refuse(HTTPError(parserError), context: context)
        }
        context.fireErrorCaught(error)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head) where head.status.code >= 200: responseInProgress = true
        case .end: responseInProgress = false
        default: break
        }
        context.write(data, promise: promise)
    }
}

extension HTTPError {
    /// Every code a request refused by the pipeline can get.
    static let refusalCodes = [
        "header_too_large", "ambiguous_framing", "invalid_content_length", "invalid_chunk_size", "invalid_header",
        "malformed_request", "header_timeout",
    ]

    /// The client-facing error for a request the parser refused.
    init(_ parserError: HTTPParserError) {
        switch parserError {
        case .headerOverflow:
            self.init(
                .requestHeaderFieldsTooLarge,
                code: "header_too_large",
                message: "The request head exceeds the header size limit"
            )
        case .unexpectedContentLength:
            self.init(
                .badRequest,
                code: "ambiguous_framing",
                message: "Content-Length and Transfer-Encoding conflict, or Content-Length is repeated"
            )
        case .invalidContentLength:
            self.init(.badRequest, code: "invalid_content_length", message: "Content-Length is not a valid length")
        case .invalidChunkSize:
            self.init(.badRequest, code: "invalid_chunk_size", message: "A chunk size is not valid hexadecimal")
        case .invalidHeaderToken:
            self.init(.badRequest, code: "invalid_header", message: "A header name or value has invalid characters")
        default:
            self.init(
                .badRequest,
                code: "malformed_request",
                message: "The request is not valid HTTP/1.1: \(parserError)"
            )
        }
    }
}
