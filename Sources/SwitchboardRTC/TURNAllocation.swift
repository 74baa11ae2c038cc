import NIOConcurrencyHelpers
import NIOCore
import SwitchboardSTUN

/// One TURN allocation (RFC 8656 §2.2): a relay socket that a client's link owns, with the peers the
/// client permits to reach it and the channels it bound to them, each with its own lifetime, and a byte
/// budget per second. Every packet takes the lock once.
final class TURNAllocation: Sendable {
    static let permissionLifetime = TimeAmount.seconds(300)
    static let channelLifetime = TimeAmount.seconds(600)

    let link: ClientLink
    let username: String
    /// The relay socket, bound before the allocation exists.
    let relay: any Channel
    let relayAddress: SocketAddress
    private let state: NIOLockedValueBox<State>

    /// Where a peer's datagram goes.
    enum Inbound {
        case channel(UInt16)
        case indication
        case refused(TURNRefusal)
    }

    private struct State {
        var expiresAt: NIODeadline
        var permissions: [PeerIP: NIODeadline] = [:]
        var channels: [UInt16: (peer: SocketAddress, expiresAt: NIODeadline)] = [:]
        var channelOfPeer: [SocketAddress: UInt16] = [:]
        var budget: ByteBudget?
        /// The last Allocate's transaction and answer, for a retransmitted request (RFC 8656 §7.2).
        var allocateTransaction: [UInt8]
        var allocateAnswer: [UInt8]

        mutating func spend(_ bytes: Int, now: NIODeadline) -> Bool {
            budget?.spend(bytes, now: now) ?? true
        }
    }

    init(
        link: ClientLink,
        username: String,
        relay: any Channel,
        relayAddress: SocketAddress,
        lifetime: TimeAmount,
        bytesPerSecond: Int?,
        allocateTransaction: [UInt8]
    ) {
        self.link = link
        self.username = username
        self.relay = relay
        self.relayAddress = relayAddress
        state = NIOLockedValueBox(
            State(
                expiresAt: .now() + lifetime,
                budget: bytesPerSecond.map(ByteBudget.init),
                allocateTransaction: allocateTransaction,
                allocateAnswer: []
            )
        )
    }

    /// The answer to an Allocate retransmitted with `transactionID`, if it is the one that created this.
    func answer(toRetransmitted transactionID: [UInt8]) -> [UInt8]? {
        state.withLockedValue { $0.allocateTransaction == transactionID ? $0.allocateAnswer : nil }
    }

    func remember(answer: [UInt8]) {
        state.withLockedValue { $0.allocateAnswer = answer }
    }

    func refresh(lifetime: TimeAmount) {
        state.withLockedValue { $0.expiresAt = .now() + lifetime }
    }

    func permit(_ peer: PeerIP) {
        state.withLockedValue { $0.permissions[peer] = .now() + Self.permissionLifetime }
    }

    /// Binds `number` to `peer` (or refreshes the binding) and permits the peer; `false` when either is
    /// already bound to another (RFC 8656 §11.2).
    func bind(channel number: UInt16, to peer: SocketAddress) -> Bool {
        state.withLockedValue { state in
            if let bound = state.channels[number], bound.peer != peer { return false }
            if let bound = state.channelOfPeer[peer], bound != number { return false }
            let now = NIODeadline.now()
            state.channels[number] = (peer, now + Self.channelLifetime)
            state.channelOfPeer[peer] = number
            if let ip = PeerIP(peer) {
                state.permissions[ip] = now + Self.permissionLifetime
            }
            return true
        }
    }

    /// The peer of a client's ChannelData on `number`, when the channel is bound and its bytes fit the budget.
    func peer(ofChannel number: UInt16, bytes: Int) -> Result<SocketAddress, TURNRefusal> {
        state.withLockedValue { state in
            let now = NIODeadline.now()
            guard let bound = state.channels[number], bound.expiresAt > now else { return .failure(.noChannel) }
            return state.spend(bytes, now: now) ? .success(bound.peer) : .failure(.overBudget)
        }
    }

    /// Why a client's Send indication may not go to `peer`; `nil` when it may.
    func refusal(sending bytes: Int, to peer: SocketAddress) -> TURNRefusal? {
        state.withLockedValue { state in
            let now = NIODeadline.now()
            guard let ip = PeerIP(peer), let expiry = state.permissions[ip], expiry > now else { return .noPermission }
            return state.spend(bytes, now: now) ? nil : .overBudget
        }
    }

    /// How a datagram from `peer` reaches the client: on its channel, in a Data indication, or not at all
    /// (no permission for the peer's address, or over budget).
    func route(from peer: SocketAddress, bytes: Int) -> Inbound {
        state.withLockedValue { state in
            let now = NIODeadline.now()
            guard let ip = PeerIP(peer), let expiry = state.permissions[ip], expiry > now else {
                return .refused(.noPermission)
            }
            guard state.spend(bytes, now: now) else { return .refused(.overBudget) }
            if let number = state.channelOfPeer[peer], let bound = state.channels[number], bound.expiresAt > now {
                return .channel(number)
            }
            return .indication
        }
    }

    /// Forgets expired permissions and channels; answers whether the allocation itself has expired, with
    /// what it still holds.
    func sweep(now: NIODeadline) -> (expired: Bool, permissions: Int, channels: Int) {
        state.withLockedValue { state in
            state.permissions = state.permissions.filter { $0.value > now }
            for (number, bound) in state.channels where bound.expiresAt <= now {
                state.channels[number] = nil
                state.channelOfPeer[bound.peer] = nil
            }
            return (state.expiresAt <= now, state.permissions.count, state.channels.count)
        }
    }
}

/// A token bucket of bytes: `rate` a second, holding at most one second's worth.
struct ByteBudget: Sendable {
    let rate: Int
    private var available: Int
    private var refilledAt: NIODeadline

    init(rate: Int) {
        self.rate = rate
        available = rate
        refilledAt = .now()
    }

    mutating func spend(_ bytes: Int, now: NIODeadline) -> Bool {
        let elapsed = (now - refilledAt).nanoseconds
        if elapsed > 0 {
            available = min(rate, available + Int(Double(rate) * Double(elapsed) / 1e9))
            refilledAt = now
        }
        guard available >= bytes else { return false }
        available -= bytes
        return true
    }
}

/// A peer's IP address without its port: what a permission is for (RFC 8656 §9).
enum PeerIP: Hashable, Sendable {
    case v4(UInt32)
    case v6(UInt64, UInt64)

    init?(_ address: SocketAddress) {
        switch address {
        case .v4(let v4):
            self = .v4(v4.address.sin_addr.s_addr)
        case .v6(let v6):
            self = withUnsafeBytes(of: v6.address.sin6_addr) { raw in
                .v6(
                    raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self),
                    raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
                )
            }
        case .unixDomainSocket:
            return nil
        }
    }
}

/// Reads a peer's datagrams on a relay socket and hands them to the allocation's client.
final class TURNRelayHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    private let server: TURNServer
    /// Set once the allocation that owns the socket exists; until then datagrams are dropped.
    var allocation: TURNAllocation?

    init(server: TURNServer) {
        self.server = server
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let allocation else { return }
        let envelope = unwrapInboundIn(data)
        guard DatagramReads.isWhole(envelope.data) else { return server.metrics.refusals.record(.oversized) }
        server.relayToClient(envelope.data, from: envelope.remoteAddress, allocation: allocation)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // ICMP errors from peers do not end the relay socket.
    }
}
