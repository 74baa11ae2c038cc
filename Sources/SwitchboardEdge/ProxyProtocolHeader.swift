import NIOCore

/// The PROXY protocol header (HAProxy's "PROXY protocol" specification, versions 1 and 2) that tells an
/// upstream the client's address on a TCP connection it receives from the edge.
enum ProxyProtocolHeader {
    enum Version: String, Sendable {
        case v1
        case v2
    }

    /// The header for a connection from `source` to `destination` (the edge's listening address).
    static func make(_ version: Version, source: SocketAddress?, destination: SocketAddress?) -> ByteBuffer {
        switch version {
        case .v1: v1(source: source, destination: destination)
        case .v2: v2(source: source, destination: destination)
        }
    }

    private static func v1(source: SocketAddress?, destination: SocketAddress?) -> ByteBuffer {
        guard let source, let destination, let from = source.ipAddress, let to = destination.ipAddress,
            let fromPort = source.port, let toPort = destination.port
        else { return ByteBuffer(string: "PROXY UNKNOWN\r\n") }
        let family = if case .v6 = source { "TCP6" } else { "TCP4" }
        return ByteBuffer(string: "PROXY \(family) \(from) \(to) \(fromPort) \(toPort)\r\n")
    }

    /// The 12-byte signature, then version 2 with the PROXY command, the family and the addresses.
    private static let signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]

    private static func v2(source: SocketAddress?, destination: SocketAddress?) -> ByteBuffer {
        var buffer = ByteBuffer(bytes: signature)
        switch (source, destination) {
        case (.v4(let from), .v4(let to)):
            buffer.writeInteger(UInt8(0x21))  // version 2, PROXY
            buffer.writeInteger(UInt8(0x11))  // AF_INET, STREAM
            buffer.writeInteger(UInt16(12))
            withUnsafeBytes(of: from.address.sin_addr) { _ = buffer.writeBytes($0) }
            withUnsafeBytes(of: to.address.sin_addr) { _ = buffer.writeBytes($0) }
            buffer.writeInteger(UInt16(bigEndian: from.address.sin_port), endianness: .big)
            buffer.writeInteger(UInt16(bigEndian: to.address.sin_port), endianness: .big)
        case (.v6(let from), .v6(let to)):
            buffer.writeInteger(UInt8(0x21))
            buffer.writeInteger(UInt8(0x21))  // AF_INET6, STREAM
            buffer.writeInteger(UInt16(36))
            withUnsafeBytes(of: from.address.sin6_addr) { _ = buffer.writeBytes($0) }
            withUnsafeBytes(of: to.address.sin6_addr) { _ = buffer.writeBytes($0) }
            buffer.writeInteger(UInt16(bigEndian: from.address.sin6_port), endianness: .big)
            buffer.writeInteger(UInt16(bigEndian: to.address.sin6_port), endianness: .big)
        default:
            buffer.writeInteger(UInt8(0x20))  // version 2, LOCAL: no addresses
            buffer.writeInteger(UInt8(0x00))
            buffer.writeInteger(UInt16(0))
        }
        return buffer
    }
}
