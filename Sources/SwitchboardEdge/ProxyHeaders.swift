import NIOCore
import NIOHTTP1

/// The header rules of a proxy hop: what a hop must not pass on, and what it adds about the client.
enum ProxyHeaders {
    /// Hop-by-hop headers (RFC 9110 §7.6.1), never forwarded, with any header that `Connection` names.
    static let hopByHop = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
        "proxy-authorization", "proxy-authenticate",
    ]

    /// `headers` without the hop-by-hop ones. Names are compared in place, case-insensitively: headers
    /// that need no change (most) are returned as they are, without a copy.
    static func removingHopByHop(_ headers: HTTPHeaders) -> HTTPHeaders {
        var kept = headers
        for listed in headers["connection"] {
            for name in listed.split(separator: ",") {
                kept.remove(name: String(name.trimmingOptionalWhitespace))
            }
        }
        for name in hopByHop where kept.contains(name: name) {
            kept.remove(name: name)
        }
        return kept
    }

    /// Adds `X-Forwarded-For`/`-Proto`/`-Host` and RFC 7239 `Forwarded` for `client`. Untrusted incoming
    /// values are replaced; trusted ones are appended to, so the chain of hops stays intact.
    static func addForwarding(
        to headers: inout HTTPHeaders,
        client: SocketAddress?,
        scheme: String,
        trustIncoming: Bool
    ) {
        let host = headers.first(name: "host")
        if !trustIncoming {
            for name in ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded"] {
                headers.remove(name: name)
            }
        }
        let ip = client?.ipAddress ?? "unknown"
        let chain = headers["x-forwarded-for"].joined(separator: ", ")
        headers.replaceOrAdd(name: "X-Forwarded-For", value: chain.isEmpty ? ip : "\(chain), \(ip)")
        if !headers.contains(name: "x-forwarded-proto") {
            headers.add(name: "X-Forwarded-Proto", value: scheme)
        }
        if let host, !headers.contains(name: "x-forwarded-host") {
            headers.add(name: "X-Forwarded-Host", value: host)
        }
        // RFC 7239 §6: an IPv6 node is quoted and bracketed; a host is a quoted-string when it needs to be.
        let node = client.map { if case .v6 = $0 { "\"[\(ip)]\"" } else { ip } } ?? "unknown"
        var element = "for=\(node);proto=\(scheme)"
        if let host {
            element += ";host=\"\(host)\""
        }
        let previous = headers["forwarded"].joined(separator: ", ")
        headers.replaceOrAdd(name: "Forwarded", value: previous.isEmpty ? element : "\(previous), \(element)")
    }
}

extension Substring {
    /// Without the spaces and tabs around it (HTTP's optional whitespace, RFC 9110 §5.6.3).
    fileprivate var trimmingOptionalWhitespace: Substring {
        var trimmed = self
        while let first = trimmed.first, first == " " || first == "\t" { trimmed.removeFirst() }
        while let last = trimmed.last, last == " " || last == "\t" { trimmed.removeLast() }
        return trimmed
    }
}
