import NIOCore

/// The way back to a STUN or TURN client: its address on the UDP socket, or its TCP connection. A TURN
/// allocation belongs to one link (RFC 8656's 5-tuple).
struct ClientLink: Sendable {
    enum Key: Hashable, Sendable {
        case datagram(SocketAddress)
        case stream(ObjectIdentifier)
    }

    let key: Key
    /// The UDP socket or the TCP connection.
    let channel: any Channel
    let remote: SocketAddress

    static func datagram(_ channel: any Channel, remote: SocketAddress) -> ClientLink {
        ClientLink(key: .datagram(remote), channel: channel, remote: remote)
    }

    static func stream(_ channel: any Channel, remote: SocketAddress) -> ClientLink {
        ClientLink(key: .stream(ObjectIdentifier(channel)), channel: channel, remote: remote)
    }

    /// Over TCP, ChannelData is padded to 4 bytes (RFC 8656 §12.5).
    var isStream: Bool {
        if case .stream = key { true } else { false }
    }

    func send(_ buffer: ByteBuffer) {
        switch key {
        case .datagram:
            channel.writeAndFlush(AddressedEnvelope(remoteAddress: remote, data: buffer), promise: nil)
        case .stream:
            channel.writeAndFlush(buffer, promise: nil)
        }
    }

    func send(_ bytes: [UInt8]) {
        send(channel.allocator.buffer(bytes: bytes))
    }
}
