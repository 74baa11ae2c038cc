import Foundation
import NIOCore
import NIOHTTP1

/// A request whose head and body have been read, as a route handler sees it.
public struct Request: Sendable {
    public var head: HTTPRequestHead
    /// The body, read in full up to the route's limit.
    public var body: ByteBuffer
    /// Values of the `{name}` segments of the matched route pattern.
    public var parameters: [String: String]
    /// The peer's address, when the socket knows it.
    public var remoteAddress: SocketAddress?

    public init(
        head: HTTPRequestHead,
        body: ByteBuffer = ByteBuffer(),
        parameters: [String: String] = [:],
        remoteAddress: SocketAddress? = nil
    ) {
        self.head = head
        self.body = body
        self.parameters = parameters
        self.remoteAddress = remoteAddress
    }

    public var method: HTTPMethod { head.method }

    /// The path without the query string.
    public var path: Substring { head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0] }

    /// The decoded query parameters; the last value wins when a name repeats.
    public var query: [String: String] {
        guard let mark = head.uri.firstIndex(of: "?") else { return [:] }
        var items: [String: String] = [:]
        for pair in head.uri[head.uri.index(after: mark)...].split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(parts[0]).removingFormEncoding
            items[name] = parts.count > 1 ? String(parts[1]).removingFormEncoding : ""
        }
        return items
    }
}

extension String {
    /// Decodes `application/x-www-form-urlencoded` text: `+` is a space, `%XX` a byte.
    var removingFormEncoding: String {
        let spaced = replacingOccurrences(of: "+", with: " ")
        return spaced.removingPercentEncoding ?? spaced
    }
}
