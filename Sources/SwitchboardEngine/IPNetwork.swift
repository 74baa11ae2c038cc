import NIOCore

/// An IP network written in CIDR form (`10.0.0.0/8`, `fc00::/7`), for the forward proxy's access rules
/// and the TURN relay's peer rules.
public struct IPNetwork: Sendable, Equatable {
    private let bytes: [UInt8]
    private let prefixLength: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1)
        guard let bytes = IPNetwork.bytes(of: String(parts[0])) else { return nil }
        let length = parts.count == 2 ? Int(parts[1]) : bytes.count * 8
        guard let length, (0...bytes.count * 8).contains(length) else { return nil }
        self.bytes = bytes
        self.prefixLength = length
    }

    public func contains(_ address: SocketAddress) -> Bool {
        guard let ip = address.ipAddress, var candidate = IPNetwork.bytes(of: ip) else { return false }
        // An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is its IPv4 address.
        if candidate.count == 16, bytes.count == 4,
            candidate[..<12].elementsEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF])
        {
            candidate = Array(candidate[12...])
        }
        guard candidate.count == bytes.count else { return false }
        var remaining = prefixLength
        for (own, other) in zip(bytes, candidate) where remaining > 0 {
            let mask: UInt8 = remaining >= 8 ? 0xFF : ~(0xFF >> UInt8(remaining))
            if own & mask != other & mask { return false }
            remaining -= 8
        }
        return true
    }

    private static func bytes(of ip: String) -> [UInt8]? {
        guard let address = try? SocketAddress(ipAddress: ip, port: 0) else { return nil }
        switch address {
        case .v4(let v4): return withUnsafeBytes(of: v4.address.sin_addr) { Array($0) }
        case .v6(let v6): return withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }
        default: return nil
        }
    }

    /// Destinations a forward proxy or a TURN relay refuses unless allowed (SSRF): this host, private and shared
    /// networks, link-local ones (where cloud metadata services answer, 169.254.169.254), and the
    /// unspecified and multicast ranges.
    public static let nonPublic: [IPNetwork] = [
        "0.0.0.0/8", "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
        "169.254.0.0/16", "224.0.0.0/4", "::/128", "::1/128", "fc00::/7", "fe80::/10", "ff00::/8",
    ].map { IPNetwork($0)! }
}
