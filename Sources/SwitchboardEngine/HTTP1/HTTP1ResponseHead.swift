import Foundation
import NIOCore
import NIOHTTP1
import SwitchboardHTTP1

/// How a response's body travels on an HTTP/1.1 connection.
enum HTTP1BodyFraming: Equatable {
    /// No body may follow (1xx, 204, 304, or the answer to `HEAD`): body parts are dropped.
    case none
    /// `Content-Length` was given: the bytes go as they are.
    case identity
    /// Each body part becomes a chunk, and the end the last chunk.
    case chunked
    /// An HTTP/1.0 client without a length: the body ends when the connection closes.
    case untilClose
}

/// Encodes a response head into bytes and chooses its body framing: `Content-Length` or
/// `Transfer-Encoding` as the handler set them, else chunked (HTTP/1.1) or until close (HTTP/1.0), plus
/// a `Date` (RFC 9110 §6.6.1) formatted once a second.
struct HTTP1ResponseHeadEncoder {
    private var date = HTTPDate()

    /// Writes `head`, the answer to a `requestMethod` request of `requestVersion`, into `buffer`.
    mutating func encode(
        _ head: HTTPResponseHead,
        requestMethod: HTTPMethod,
        requestVersion: HTTPVersion,
        into buffer: inout ByteBuffer
    ) -> HTTP1BodyFraming {
        buffer.writeStaticString("HTTP/1.1 ")
        buffer.writeString(String(head.status.code))
        buffer.writeStaticString(" ")
        buffer.writeString(head.status.reasonPhrase)
        buffer.writeStaticString("\r\n")
        var hasLength = false
        var hasChunked = false
        var hasDate = false
        var hasConnection = false
        for (name, value) in head.headers {
            switch name.utf8.count {
            case 4 where name.isASCIICaseInsensitiveMatch("date"): hasDate = true
            case 10 where name.isASCIICaseInsensitiveMatch("connection"): hasConnection = true
            case 14 where name.isASCIICaseInsensitiveMatch("content-length"): hasLength = true
            case 17 where name.isASCIICaseInsensitiveMatch("transfer-encoding"): hasChunked = true
            default: break
            }
            buffer.writeString(name)
            buffer.writeStaticString(": ")
            buffer.writeString(value)
            buffer.writeStaticString("\r\n")
        }
        if !hasDate {
            buffer.writeStaticString("date: ")
            date.write(into: &buffer)
            buffer.writeStaticString("\r\n")
        }
        let framing: HTTP1BodyFraming
        switch head.status.code {
        case 100..<200, 204, 304:
            framing = .none
        case _ where requestMethod == .HEAD:
            framing = .none
        case _ where hasChunked:
            framing = .chunked
        case _ where hasLength:
            framing = .identity
        case _ where requestVersion.minor >= 1:
            buffer.writeStaticString("transfer-encoding: chunked\r\n")
            framing = .chunked
        default:
            if !hasConnection {
                buffer.writeStaticString("connection: close\r\n")
            }
            framing = .untilClose
        }
        buffer.writeStaticString("\r\n")
        return framing
    }
}

/// The `Date` field's value (IMF-fixdate), made anew only when the second changes.
private struct HTTPDate {
    private var second = 0
    private var bytes: [UInt8] = []

    mutating func write(into buffer: inout ByteBuffer) {
        var now = time(nil)
        if now != second || bytes.isEmpty {
            second = now
            var parts = tm()
            gmtime_r(&now, &parts)
            bytes = Array(Self.format(parts).utf8)
        }
        buffer.writeBytes(bytes)
    }

    private static let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    private static func format(_ parts: tm) -> String {
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return
            "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }
}
