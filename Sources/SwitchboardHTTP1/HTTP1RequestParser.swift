import NIOCore
import NIOHTTP1

/// Parses HTTP/1.1 requests straight from the connection's bytes (RFC 9112), one part at a time: a head,
/// the body in slices of the bytes read (no copies), and the end. It refuses what RFC 9112 says a server
/// must not accept — a malformed request line, a field name with whitespace before its colon, obs-fold,
/// control characters in a field, a missing or repeated `Host` in HTTP/1.1, `Content-Length` with
/// `Transfer-Encoding`, a repeated or non-decimal `Content-Length`, a transfer coding list that does not end
/// in `chunked` — and every line must end in CRLF. Pure value type: the codec and the fuzz target drive it.
public struct HTTP1RequestParser: Sendable {
    /// One part of a request: its head, a piece of its body, or its end (trailers are not passed on).
    public typealias Part = HTTPServerRequestPart

    /// Why a request was refused; each becomes a JSON error and the connection's close.
    public enum Failure: Error, Equatable, Sendable {
        /// The head (request line and fields) is larger than the limit, or has too many fields.
        case headTooLarge
        case invalidRequestLine
        /// The request line names a protocol other than HTTP (another protocol's bytes, such as an HTTP/2
        /// connection preface that is not one): there is no HTTP to answer in.
        case notHTTP
        case unsupportedVersion
        case invalidHeader
        /// HTTP/1.1 requires exactly one `Host` with a valid value.
        case invalidHost
        case invalidContentLength
        /// `Content-Length` repeated or sent with `Transfer-Encoding`, or `Transfer-Encoding` in HTTP/1.0.
        case ambiguousFraming
        /// `Transfer-Encoding` that does not end in `chunked`, or names it twice.
        case invalidTransferEncoding
        /// A transfer coding other than `chunked` (such as `gzip, chunked`).
        case unsupportedTransferCoding
        case invalidChunk
    }

    private enum State: Sendable {
        case head
        case fixedBody(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers
        case end
    }

    /// The largest head, and trailer section, accepted.
    public let maxHeadBytes: Int
    /// The most header fields accepted in one head.
    public let maxFieldCount: Int
    private var state = State.head
    /// Bytes already searched for the end of the head, so a head arriving in pieces is scanned once.
    private var scannedHeadBytes = 0

    public init(maxHeadBytes: Int, maxFieldCount: Int = 128) {
        self.maxHeadBytes = maxHeadBytes
        self.maxFieldCount = maxFieldCount
    }

    /// Whether the parser is between requests (nothing of the next one parsed yet).
    public var isAtRequestBoundary: Bool {
        if case .head = state { return true }
        return false
    }

    /// The next part of the request from `buffer`, consuming its bytes; `nil` when more bytes are needed.
    public mutating func next(from buffer: inout ByteBuffer) throws -> Part? {
        switch state {
        case .head:
            return try parseHead(from: &buffer)
        case .fixedBody(let remaining):
            let count = min(remaining, buffer.readableBytes)
            guard count > 0 else { return nil }
            state = remaining == count ? .end : .fixedBody(remaining: remaining - count)
            return .body(buffer.readSlice(length: count)!)
        case .chunkSize:
            guard let line = try readLine(from: &buffer, limit: 1024) else { return nil }
            let size = try Self.chunkSize(line)
            state = size == 0 ? .trailers : .chunkData(remaining: size)
            return try next(from: &buffer)
        case .chunkData(let remaining):
            let count = min(remaining, buffer.readableBytes)
            guard count > 0 else { return nil }
            state = remaining == count ? .chunkDataEnd : .chunkData(remaining: remaining - count)
            return .body(buffer.readSlice(length: count)!)
        case .chunkDataEnd:
            guard buffer.readableBytes >= 2 else { return nil }
            guard buffer.readInteger(as: UInt16.self) == Self.crlf else { throw Failure.invalidChunk }
            state = .chunkSize
            return try next(from: &buffer)
        case .trailers:
            // Trailer fields are checked like header fields and then dropped.
            while let line = try readLine(from: &buffer, limit: maxHeadBytes) {
                if line.readableBytes == 0 {
                    state = .end
                    return try next(from: &buffer)
                }
                try line.withUnsafeReadableBytes { bytes in _ = try Self.field(bytes[...]) }
            }
            return nil
        case .end:
            state = .head
            return .end(nil)
        }
    }

    // MARK: - The head

    private static let crlf: UInt16 = 0x0D0A

    private mutating func parseHead(from buffer: inout ByteBuffer) throws -> Part? {
        // Empty lines before a request line are ignored (RFC 9112 §2.2).
        while buffer.readableBytes >= 2, buffer.getInteger(at: buffer.readerIndex, as: UInt16.self) == Self.crlf {
            buffer.moveReaderIndex(forwardBy: 2)
        }
        let length = buffer.withUnsafeReadableBytes { bytes in
            Self.headLength(bytes, from: max(0, scannedHeadBytes - 3))
        }
        guard let length else {
            scannedHeadBytes = buffer.readableBytes
            if buffer.readableBytes > maxHeadBytes { throw Failure.headTooLarge }
            return nil
        }
        scannedHeadBytes = 0
        guard length <= maxHeadBytes else { throw Failure.headTooLarge }
        let (head, framing) = try buffer.withUnsafeReadableBytes { bytes in
            try Self.head(bytes[..<length], maxFieldCount: maxFieldCount)
        }
        buffer.moveReaderIndex(forwardBy: length)
        switch framing {
        case .none: state = .end
        case .length(let count): state = count == 0 ? .end : .fixedBody(remaining: count)
        case .chunked: state = .chunkSize
        }
        return .head(head)
    }

    /// The length of the head including its closing empty line, if `bytes` holds all of it.
    private static func headLength(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Int? {
        guard bytes.count >= 4 else { return nil }
        var index = start
        while index + 3 < bytes.count {
            if bytes[index + 3] != 0x0A {
                // The last byte of "\r\n\r\n" is not here: skip ahead by as much as that allows.
                index += bytes[index + 3] == 0x0D ? 1 : 4
                continue
            }
            if bytes[index] == 0x0D, bytes[index + 1] == 0x0A, bytes[index + 2] == 0x0D {
                return index + 4
            }
            index += 1
        }
        return nil
    }

    private enum Framing {
        case none
        case length(Int)
        case chunked
    }

    private static func head(
        _ bytes: Slice<UnsafeRawBufferPointer>,
        maxFieldCount: Int
    ) throws -> (HTTPRequestHead, Framing) {
        var lines = Lines(bytes)
        guard let requestLine = lines.next() else { throw Failure.invalidRequestLine }
        let (method, uri, version) = try Self.requestLine(requestLine)
        var headers = HTTPHeaders()
        var hosts = 0
        var contentLength: Int?
        var contentLengths = 0
        var codings: [Substring] = []
        while let line = lines.next(), !line.isEmpty {
            guard headers.count < maxFieldCount else { throw Failure.headTooLarge }
            let (name, value) = try field(line)
            headers.add(name: name, value: value)
            switch name.utf8.count {
            case 4 where name.isASCIICaseInsensitiveMatch("host"):
                hosts += 1
                guard Self.isValidHost(value) else { throw Failure.invalidHost }
            case 14 where name.isASCIICaseInsensitiveMatch("content-length"):
                contentLengths += 1
                contentLength = Self.decimal(value)
                guard contentLength != nil else { throw Failure.invalidContentLength }
            case 17 where name.isASCIICaseInsensitiveMatch("transfer-encoding"):
                codings += value.split(separator: ",").map { $0.trimmingSpaces }
            default:
                break
            }
        }
        if version.minor == 1, hosts != 1 { throw Failure.invalidHost }
        if hosts > 1 { throw Failure.invalidHost }
        let head = HTTPRequestHead(version: version, method: method, uri: uri, headers: headers)
        if contentLengths > 1 { throw Failure.ambiguousFraming }
        if !codings.isEmpty {
            guard contentLength == nil, version.minor == 1 else { throw Failure.ambiguousFraming }
            let chunked = codings.filter { $0.lowercased() == "chunked" }.count
            guard chunked == 1, codings.last?.lowercased() == "chunked" else { throw Failure.invalidTransferEncoding }
            guard codings.count == 1 else { throw Failure.unsupportedTransferCoding }
            return (head, .chunked)
        }
        return (head, contentLength.map(Framing.length) ?? .none)
    }

    /// `method SP request-target SP HTTP-version`.
    private static func requestLine(
        _ line: Slice<UnsafeRawBufferPointer>
    ) throws -> (HTTPMethod, String, HTTPVersion) {
        guard let firstSpace = line.firstIndex(of: 0x20) else { throw Failure.invalidRequestLine }
        let methodBytes = line[..<firstSpace]
        guard !methodBytes.isEmpty, methodBytes.allSatisfy(isTokenByte) else { throw Failure.invalidRequestLine }
        let rest = line[(firstSpace + 1)...]
        guard let secondSpace = rest.firstIndex(of: 0x20) else { throw Failure.invalidRequestLine }
        let target = rest[..<secondSpace]
        guard !target.isEmpty, target.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { throw Failure.invalidRequestLine }
        let versionBytes = rest[(secondSpace + 1)...]
        guard versionBytes.starts(with: "HTTP/".utf8) else { throw Failure.notHTTP }
        guard versionBytes.count == 8 else { throw Failure.invalidRequestLine }
        let major = versionBytes[versionBytes.startIndex + 5]
        let dot = versionBytes[versionBytes.startIndex + 6]
        let minor = versionBytes[versionBytes.startIndex + 7]
        guard isDigit(major), dot == UInt8(ascii: "."), isDigit(minor) else { throw Failure.invalidRequestLine }
        guard major == UInt8(ascii: "1") else { throw Failure.unsupportedVersion }
        // A later HTTP/1.x is answered as HTTP/1.1 (RFC 9110 §6.2).
        let version = minor == UInt8(ascii: "0") ? HTTPVersion.http1_0 : .http1_1
        return (Self.method(methodBytes), String(decoding: target, as: UTF8.self), version)
    }

    private static func method(_ bytes: Slice<UnsafeRawBufferPointer>) -> HTTPMethod {
        switch bytes.count {
        case 3 where bytes.elementsEqual("GET".utf8): .GET
        case 3 where bytes.elementsEqual("PUT".utf8): .PUT
        case 4 where bytes.elementsEqual("POST".utf8): .POST
        case 4 where bytes.elementsEqual("HEAD".utf8): .HEAD
        case 5 where bytes.elementsEqual("PATCH".utf8): .PATCH
        case 6 where bytes.elementsEqual("DELETE".utf8): .DELETE
        case 7 where bytes.elementsEqual("OPTIONS".utf8): .OPTIONS
        default: HTTPMethod(rawValue: String(decoding: bytes, as: UTF8.self))
        }
    }

    /// `field-name ":" OWS field-value OWS`, with no whitespace before the colon and no obs-fold.
    private static func field(_ line: Slice<UnsafeRawBufferPointer>) throws -> (String, String) {
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { throw Failure.invalidHeader }
        let name = line[..<colon]
        guard !name.isEmpty, name.allSatisfy(isTokenByte) else { throw Failure.invalidHeader }
        var value = line[(colon + 1)...]
        while let first = value.first, first == 0x20 || first == 0x09 { value = value.dropFirst() }
        while let last = value.last, last == 0x20 || last == 0x09 { value = value.dropLast() }
        // Visible characters, spaces, tabs and obs-text; no control characters (a bare CR among them).
        guard value.allSatisfy({ $0 >= 0x20 ? $0 != 0x7F : $0 == 0x09 }) else { throw Failure.invalidHeader }
        return (String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self))
    }

    /// `uri-host [":" port]`, possibly empty; anything that could confuse a router or a proxy is refused.
    private static func isValidHost(_ host: String) -> Bool {
        host.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"):
                true
            default:
                "-._~%!$&'()*+,;=:[]".utf8.contains(byte)
            }
        }
    }

    /// A `Content-Length`: decimal digits only, of a size an `Int` holds.
    private static func decimal(_ value: String) -> Int? {
        guard (1...18).contains(value.utf8.count), value.utf8.allSatisfy(isDigit) else { return nil }
        return Int(value)
    }

    // MARK: - Chunked framing

    /// Reads one CRLF-terminated line, without its CRLF; `nil` until the whole line is there.
    private func readLine(from buffer: inout ByteBuffer, limit: Int) throws -> ByteBuffer? {
        let end = buffer.withUnsafeReadableBytes { $0.firstIndex(of: 0x0A) }
        guard let end else {
            if buffer.readableBytes > limit { throw Failure.invalidChunk }
            return nil
        }
        guard end > 0, end <= limit, buffer.getInteger(at: buffer.readerIndex + end - 1, as: UInt8.self) == 0x0D
        else { throw Failure.invalidChunk }
        let line = buffer.readSlice(length: end - 1)!
        buffer.moveReaderIndex(forwardBy: 2)
        return line
    }

    /// `chunk-size [chunk-ext]`: hexadecimal digits, then extensions, which are checked and ignored.
    private static func chunkSize(_ line: ByteBuffer) throws -> Int {
        try line.withUnsafeReadableBytes { bytes in
            var size = 0
            var index = 0
            while index < bytes.count, let digit = hexValue(bytes[index]) {
                guard index < 15 else { throw Failure.invalidChunk }
                size = size << 4 | digit
                index += 1
            }
            guard index > 0 else { throw Failure.invalidChunk }
            let extensions = bytes[index...]
            guard
                extensions.isEmpty || extensions.first == UInt8(ascii: ";") || extensions.first == 0x20
                    || extensions.first == 0x09,
                extensions.allSatisfy({ $0 >= 0x20 ? $0 != 0x7F : $0 == 0x09 })
            else { throw Failure.invalidChunk }
            return size
        }
    }

    private static func hexValue(_ byte: UInt8) -> Int? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): Int(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): Int(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): Int(byte - UInt8(ascii: "A") + 10)
        default: nil
        }
    }

    // MARK: - Characters

    private static func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }

    /// `tchar` of RFC 9110 §5.6.2.
    private static func isTokenByte(_ byte: UInt8) -> Bool {
        tokenBytes[Int(byte)]
    }

    private static let tokenBytes: [Bool] = (0..<256).map { value in
        let byte = UInt8(value)
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }
}

/// The CRLF-separated lines of a head; a line holding a bare CR or LF comes back unsplit and fails the
/// field checks.
private struct Lines {
    private var rest: Slice<UnsafeRawBufferPointer>

    init(_ bytes: Slice<UnsafeRawBufferPointer>) {
        rest = bytes
    }

    mutating func next() -> Slice<UnsafeRawBufferPointer>? {
        guard !rest.isEmpty else { return nil }
        var index = rest.startIndex
        while index + 1 < rest.endIndex {
            if rest[index] == 0x0D, rest[index + 1] == 0x0A {
                let line = rest[rest.startIndex..<index]
                rest = rest[(index + 2)...]
                return line
            }
            index += 1
        }
        let line = rest
        rest = rest[rest.endIndex...]
        return line
    }
}

extension Substring {
    fileprivate var trimmingSpaces: Substring {
        var value = self
        while let first = value.first, first == " " || first == "\t" { value = value.dropFirst() }
        while let last = value.last, last == " " || last == "\t" { value = value.dropLast() }
        return value
    }
}

extension String {
    /// Whether this equals `lowercase` ignoring ASCII letter case (`lowercase` is a token in lower case).
    package func isASCIICaseInsensitiveMatch(_ lowercase: StaticString) -> Bool {
        let other = UnsafeRawBufferPointer(start: lowercase.utf8Start, count: lowercase.utf8CodeUnitCount)
        return utf8.count == other.count && utf8.elementsEqual(other) { $0 | 0x20 == $1 }
    }
}
