import NIOCore

/// The way back to a STUN or TURN client: its address on the UDP socket, or its TCP connection. A TURN
/// allocation belongs to one link (RFC 8656's 5-tuple).
struct ClientLink: Sendable {
    enum Key: Hashable, Sendable {
        case datagram(SocketAddress)
        case stream(ObjectIdentifier)
    }

    let key: Key
    /// Writes to the UDP socket or the TCP connection.
    let writer: CoalescingWriter
    let remote: SocketAddress

    static func datagram(_ writer: CoalescingWriter, remote: SocketAddress) -> ClientLink {
        ClientLink(key: .datagram(remote), writer: writer, remote: remote)
    }

    static func stream(_ writer: CoalescingWriter, remote: SocketAddress) -> ClientLink {
        ClientLink(key: .stream(ObjectIdentifier(writer.channel)), writer: writer, remote: remote)
    }

    /// The UDP socket or the TCP connection.
    var channel: any Channel { writer.channel }

    /// Over TCP, ChannelData is padded to 4 bytes (RFC 8656 §12.5).
    var isStream: Bool {
        if case .stream = key { true } else { false }
    }

    func send(_ buffer: ByteBuffer) {
        switch key {
        case .datagram: writer.write(AddressedEnvelope(remoteAddress: remote, data: buffer))
        case .stream: writer.write(buffer)
        }
    }

    func send(_ bytes: [UInt8]) {
        send(channel.allocator.buffer(bytes: bytes))
    }
}

/// Writes to one socket and flushes once per turn of its event loop: what many relay sockets hand a UDP
/// socket in one turn leaves in one `sendmmsg` (and a TCP connection's in one `writev`).
final class CoalescingWriter: Sendable {
    let channel: any Channel
    private let flushScheduled: NIOLoopBoundBox<Bool>

    /// Made on the channel's event loop.
    init(channel: any Channel) {
        self.channel = channel
        flushScheduled = NIOLoopBoundBox(false, eventLoop: channel.eventLoop)
    }

    func write<Message: Sendable>(_ message: Message) {
        let eventLoop = channel.eventLoop
        guard eventLoop.inEventLoop else {
            return eventLoop.execute { self.write(message) }
        }
        channel.write(message, promise: nil)
        guard !flushScheduled.value else { return }
        flushScheduled.value = true
        // Runs once this turn's I/O events are handled.
        eventLoop.execute {
            self.flushScheduled.value = false
            self.channel.flush()
        }
    }
}
