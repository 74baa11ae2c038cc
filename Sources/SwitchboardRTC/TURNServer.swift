import CoreMetrics
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SwitchboardEngine
import SwitchboardSTUN

/// What the TURN server allows (`serve --turn-…`).
public struct TURNConfiguration: Sendable {
    public var credentials = TURNCredentials()
    /// The address relay sockets bind to and clients are told; `nil` is the STUN listener's host.
    public var relayHost: String?
    /// The ports relay sockets take.
    public var relayPorts: ClosedRange<Int> = 49152...65535
    /// Peers that may be relayed to although their address is not public (loopback, private, link-local).
    public var allowedPeers: [IPNetwork] = []
    /// Allocations at once, in all (486 beyond).
    public var maxAllocations = 10_000
    /// Allocations at once, per username (486 beyond).
    public var maxAllocationsPerUser = 1_000
    /// Bytes a second an allocation may relay, both ways together; `nil` is no cap.
    public var maxBytesPerSecond: Int?
    /// The lifetime an allocation gets when it asks for less or none, and the most it may ask for.
    public var defaultLifetime = 600
    public var maxLifetime = 3600

    public init() {}
}

/// TURN (RFC 8656): allocations of relay sockets for authenticated clients, permissions and channels to
/// their peers, and the relaying both ways. Requests are authenticated with long-term credentials; a
/// peer whose address is not public is refused (403) unless allowed, so the relay cannot reach this host
/// or its private network (the class of coturn's CVE-2020-26262).
final class TURNServer: Sendable {
    static let methods: Set<UInt16> = [
        STUNMethod.allocate, STUNMethod.refresh, STUNMethod.createPermission, STUNMethod.channelBind,
    ]
    private static let udp: UInt8 = 17

    let configuration: TURNConfiguration
    let relayHost: String
    let metrics: TURNMetrics
    private let nonces = TURNNonces()
    private let table = NIOLockedValueBox(Table())

    private struct Table {
        var allocations: [ClientLink.Key: TURNAllocation] = [:]
        /// Links whose Allocate is binding its relay socket.
        var pending: Set<ClientLink.Key> = []
        var perUser: [String: Int] = [:]
        /// Relay sockets held for a later Allocate with their RESERVATION-TOKEN (EVEN-PORT's R bit).
        var reservations: [[UInt8]: (relay: any Channel, expiresAt: NIODeadline)] = [:]

        var count: Int { allocations.count + pending.count }
    }

    init(configuration: TURNConfiguration, listenerHost: String, metrics: TURNMetrics) {
        self.configuration = configuration
        self.relayHost = configuration.relayHost ?? listenerHost
        self.metrics = metrics
    }

    // MARK: Requests

    /// Answers an Allocate, Refresh, CreatePermission or ChannelBind request.
    func handle(_ request: STUNMessage, raw: [UInt8], from link: ClientLink) {
        guard let (username, signature) = authenticate(request, raw: raw, from: link) else { return }
        if request.method == STUNMethod.allocate {
            return allocate(request, username: username, signature: signature, from: link)
        }
        guard let allocation = table.withLockedValue({ $0.allocations[link.key] }) else {
            return refuse(request, 437, "Allocation Mismatch", reason: .allocationMismatch, signature, link)
        }
        guard allocation.username == username else {
            return refuse(request, 441, "Wrong Credentials", reason: .wrongCredentials, signature, link)
        }
        switch request.method {
        case STUNMethod.refresh: refresh(request, allocation, signature, link)
        case STUNMethod.createPermission: createPermission(request, allocation, signature, link)
        default: channelBind(request, allocation, signature, link)
        }
    }

    /// The request's username and the signature its answers carry, after the long-term credential
    /// mechanism's checks (RFC 8489 §9.2.4); answers the refusal itself when they fail.
    func authenticate(
        _ request: STUNMessage,
        raw: [UInt8],
        from link: ClientLink
    ) -> (String, STUNSignature)? {
        let credentials = configuration.credentials
        let challenge: [STUNAttribute] = [
            STUNAttribute(type: STUNAttributeType.realm, value: Array(credentials.realm.utf8)),
            STUNAttribute(type: STUNAttributeType.nonce, value: Array(nonces.make().utf8)),
        ]
        guard request.hasIntegrity else {
            refuse(request, 401, "Unauthenticated", reason: .unauthenticated, nil, link, extra: challenge)
            return nil
        }
        guard let username = request.attribute(STUNAttributeType.username).flatMap(Self.text),
            let realm = request.attribute(STUNAttributeType.realm).flatMap(Self.text),
            let nonce = request.attribute(STUNAttributeType.nonce).flatMap(Self.text)
        else {
            refuse(request, 400, "Bad Request", reason: .badRequest, nil, link)
            return nil
        }
        guard nonces.isFresh(nonce), realm == credentials.realm else {
            refuse(request, 438, "Stale Nonce", reason: .staleNonce, nil, link, extra: challenge)
            return nil
        }
        guard let password = credentials.password(for: username),
            let signature = STUNSignature.verifying(
                request,
                raw: raw,
                key: credentials.key(username: username, password: password)
            )
        else {
            refuse(request, 401, "Unauthenticated", reason: .unauthenticated, nil, link, extra: challenge)
            return nil
        }
        return (username, signature)
    }

    private func allocate(_ request: STUNMessage, username: String, signature: STUNSignature, from link: ClientLink) {
        let refuse = { (code: Int, phrase: String, reason: TURNRefusal) in
            self.refuse(request, code, phrase, reason: reason, signature, link)
        }
        if let existing = table.withLockedValue({ $0.allocations[link.key] }) {
            guard let answer = existing.answer(toRetransmitted: request.transactionID) else {
                return refuse(437, "Allocation Mismatch", .allocationMismatch)
            }
            return link.send(answer)
        }
        guard let transport = request.attribute(STUNAttributeType.requestedTransport)?.value.first else {
            return refuse(400, "Bad Request", .badRequest)
        }
        guard transport == Self.udp else { return refuse(442, "Unsupported Transport Protocol", .badRequest) }
        let token = request.attribute(STUNAttributeType.reservationToken)?.value
        let evenPort = request.attribute(STUNAttributeType.evenPort)?.value
        let family = request.attribute(STUNAttributeType.requestedAddressFamily)?.value.first
        if token != nil && (evenPort != nil || family != nil) { return refuse(400, "Bad Request", .badRequest) }
        if let family, family != (relayHost.contains(":") ? 0x02 : 0x01) {
            return refuse(440, "Address Family not Supported", .addressFamily)
        }
        let admitted = table.withLockedValue { table -> Bool in
            guard !table.pending.contains(link.key) else { return false }
            guard table.count < configuration.maxAllocations,
                table.perUser[username, default: 0] < configuration.maxAllocationsPerUser
            else { return false }
            table.pending.insert(link.key)
            table.perUser[username, default: 0] += 1
            return true
        }
        guard admitted else {
            // A retransmission while the first is binding is dropped: the client sends it again.
            if table.withLockedValue({ $0.pending.contains(link.key) }) { return }
            return refuse(486, "Allocation Quota Reached", .quota)
        }
        let lifetime = lifetime(requested: request)
        Task {
            do {
                let (relay, reservation) = try await self.relaySocket(
                    token: token,
                    evenPort: evenPort.map { !$0.isEmpty && $0[0] & 0x80 != 0 },
                    on: link.channel.eventLoop
                )
                guard let relayAddress = relay.localAddress, let relayed = STUNAddress(relayAddress),
                    let mapped = STUNAddress(link.remote)
                else { throw ChannelError.inappropriateOperationForState }
                let allocation = TURNAllocation(
                    link: link,
                    username: username,
                    relay: relay,
                    relayAddress: relayAddress,
                    lifetime: .seconds(Int64(lifetime)),
                    bytesPerSecond: self.configuration.maxBytesPerSecond,
                    allocateTransaction: request.transactionID
                )
                try await relay.pipeline.handler(type: TURNRelayHandler.self).map { $0.allocation = allocation }.get()
                var attributes: [STUNAttribute] = [
                    .xorAddress(STUNAttributeType.xorRelayedAddress, relayed, transactionID: request.transactionID),
                    .uint32(STUNAttributeType.lifetime, UInt32(lifetime)),
                    .xorAddress(STUNAttributeType.xorMappedAddress, mapped, transactionID: request.transactionID),
                ]
                if let reservation {
                    attributes.append(STUNAttribute(type: STUNAttributeType.reservationToken, value: reservation))
                }
                let answer = request.successResponse(attributes, signature: signature)
                allocation.remember(answer: answer)
                let count = self.table.withLockedValue { table in
                    table.pending.remove(link.key)
                    table.allocations[link.key] = allocation
                    return table.allocations.count
                }
                self.metrics.allocations.record(count)
                link.send(answer)
            } catch {
                self.table.withLockedValue { table in
                    table.pending.remove(link.key)
                    table.perUser[username, default: 1] -= 1
                }
                refuse(508, "Insufficient Capacity", .capacity)
            }
        }
    }

    /// LIFETIME as asked, at least the default and at most the maximum (RFC 8656 §7.2).
    private func lifetime(requested request: STUNMessage) -> Int {
        let asked = request.attribute(STUNAttributeType.lifetime)?.uint32Value.map(Int.init)
        return min(
            max(asked ?? configuration.defaultLifetime, configuration.defaultLifetime),
            configuration.maxLifetime
        )
    }

    private func refresh(
        _ request: STUNMessage,
        _ allocation: TURNAllocation,
        _ signature: STUNSignature,
        _ link: ClientLink
    ) {
        let asked = request.attribute(STUNAttributeType.lifetime)?.uint32Value
        if asked == 0 {
            remove(link.key)
            return link.send(request.successResponse([.uint32(STUNAttributeType.lifetime, 0)], signature: signature))
        }
        let lifetime = lifetime(requested: request)
        allocation.refresh(lifetime: .seconds(Int64(lifetime)))
        link.send(
            request.successResponse([.uint32(STUNAttributeType.lifetime, UInt32(lifetime))], signature: signature)
        )
    }

    private func createPermission(
        _ request: STUNMessage,
        _ allocation: TURNAllocation,
        _ signature: STUNSignature,
        _ link: ClientLink
    ) {
        let peers = request.attributes.filter { $0.type == STUNAttributeType.xorPeerAddress }
        guard !peers.isEmpty else { return refuse(request, 400, "Bad Request", reason: .badRequest, signature, link) }
        var addresses: [PeerIP] = []
        for attribute in peers {
            switch peer(attribute, of: request, allocation: allocation) {
            case .success(let peer): addresses.append(PeerIP(peer)!)
            case .failure(let refusal): return refuse(request, refusal, signature, link)
            }
        }
        for address in addresses {
            allocation.permit(address)
        }
        link.send(request.successResponse([], signature: signature))
    }

    private func channelBind(
        _ request: STUNMessage,
        _ allocation: TURNAllocation,
        _ signature: STUNSignature,
        _ link: ClientLink
    ) {
        guard let value = request.attribute(STUNAttributeType.channelNumber)?.value, value.count == 4,
            case let number = UInt16(value[0]) << 8 | UInt16(value[1]), ChannelData.numbers.contains(number),
            let attribute = request.attribute(STUNAttributeType.xorPeerAddress)
        else { return refuse(request, 400, "Bad Request", reason: .badRequest, signature, link) }
        switch peer(attribute, of: request, allocation: allocation) {
        case .failure(let refusal):
            refuse(request, refusal, signature, link)
        case .success(let peer):
            guard allocation.bind(channel: number, to: peer) else {
                return refuse(request, 400, "Bad Request", reason: .channelInUse, signature, link)
            }
            link.send(request.successResponse([], signature: signature))
        }
    }

    /// Why a peer address is refused.
    struct Refusal: Error {
        var code: Int
        var phrase: String
        var reason: TURNRefusal
    }

    /// The peer an XOR-PEER-ADDRESS names, when the relay may reach it.
    private func peer(
        _ attribute: STUNAttribute,
        of request: STUNMessage,
        allocation: TURNAllocation
    ) -> Result<SocketAddress, Refusal> {
        guard let address = STUNAddress(xorValue: attribute.value, transactionID: request.transactionID),
            let peer = address.socketAddress
        else { return .failure(Refusal(code: 400, phrase: "Bad Request", reason: .badRequest)) }
        guard peer.protocol == allocation.relayAddress.protocol else {
            return .failure(Refusal(code: 443, phrase: "Peer Address Family Mismatch", reason: .addressFamily))
        }
        guard allows(peer) else {
            return .failure(Refusal(code: 403, phrase: "Forbidden", reason: .forbiddenPeer))
        }
        return .success(peer)
    }

    /// Whether the relay may send to `peer`: a public address, or one in the allow list.
    func allows(_ peer: SocketAddress) -> Bool {
        configuration.allowedPeers.contains { $0.contains(peer) } || !IPNetwork.nonPublic.contains { $0.contains(peer) }
    }

    private func refuse(
        _ request: STUNMessage,
        _ code: Int,
        _ phrase: String,
        reason: TURNRefusal,
        _ signature: STUNSignature?,
        _ link: ClientLink,
        extra: [STUNAttribute] = []
    ) {
        metrics.refusals.record(reason)
        link.send(request.errorResponse(code, phrase, extra: extra, signature: signature))
    }

    private func refuse(_ request: STUNMessage, _ refusal: Refusal, _ signature: STUNSignature, _ link: ClientLink) {
        refuse(request, refusal.code, refusal.phrase, reason: refusal.reason, signature, link)
    }

    // MARK: Relaying

    /// A client's ChannelData: its data goes to the channel's peer.
    func relayToPeer(channelData buffer: ByteBuffer, from link: ClientLink) {
        guard let channel = buffer.getInteger(at: buffer.readerIndex, as: UInt16.self),
            let length = buffer.getInteger(at: buffer.readerIndex + 2, as: UInt16.self),
            Int(length) + ChannelData.headerLength <= buffer.readableBytes,
            let data = buffer.getSlice(at: buffer.readerIndex + ChannelData.headerLength, length: Int(length)),
            let allocation = table.withLockedValue({ $0.allocations[link.key] })
        else { return metrics.refusals.record(.noAllocation) }
        switch allocation.peer(ofChannel: channel, bytes: data.readableBytes) {
        case .success(let peer): forward(data, to: peer, from: allocation)
        case .failure(let refusal): metrics.refusals.record(refusal)
        }
    }

    /// A client's Send indication: its DATA goes to XOR-PEER-ADDRESS if a permission allows it.
    func send(_ indication: STUNMessage, from link: ClientLink) {
        guard let allocation = table.withLockedValue({ $0.allocations[link.key] }),
            let data = indication.attribute(STUNAttributeType.data)?.value,
            let value = indication.attribute(STUNAttributeType.xorPeerAddress)?.value,
            let peer = STUNAddress(xorValue: value, transactionID: indication.transactionID)?.socketAddress
        else { return metrics.refusals.record(.noAllocation) }
        if let refusal = allocation.refusal(sending: data.count, to: peer) { return metrics.refusals.record(refusal) }
        forward(link.channel.allocator.buffer(bytes: data), to: peer, from: allocation)
    }

    private func forward(_ data: ByteBuffer, to peer: SocketAddress, from allocation: TURNAllocation) {
        metrics.toPeer.record(bytes: data.readableBytes)
        allocation.relay.writeAndFlush(AddressedEnvelope(remoteAddress: peer, data: data), promise: nil)
    }

    /// A peer's datagram on a relay socket: to the client on its channel, or in a Data indication.
    func relayToClient(_ data: ByteBuffer, from peer: SocketAddress, allocation: TURNAllocation) {
        let link = allocation.link
        switch allocation.route(from: peer, bytes: data.readableBytes) {
        case .refused(let refusal):
            metrics.refusals.record(refusal)
        case .channel(let number):
            let padded = ChannelData.wireLength(dataLength: data.readableBytes, padded: link.isStream)
            var buffer = link.channel.allocator.buffer(capacity: padded)
            buffer.writeBytes(ChannelData.header(channel: number, dataLength: data.readableBytes))
            buffer.writeImmutableBuffer(data)
            buffer.writeRepeatingByte(0, count: padded - buffer.readableBytes)
            metrics.toClient.record(bytes: data.readableBytes)
            link.send(buffer)
        case .indication:
            guard let address = STUNAddress(peer) else { return }
            let transactionID = (0..<12).map { _ in UInt8.random(in: .min ... .max) }
            let indication = STUNMessage(
                method: STUNMethod.data,
                messageClass: .indication,
                transactionID: transactionID,
                attributes: [
                    .xorAddress(STUNAttributeType.xorPeerAddress, address, transactionID: transactionID),
                    STUNAttribute(type: STUNAttributeType.data, value: Array(data.readableBytesView)),
                ]
            )
            metrics.toClient.record(bytes: data.readableBytes)
            link.send(indication.encoded())
        }
    }

    // MARK: Relay sockets

    /// A relay socket on `eventLoop` (where the client's link is, so relaying stays on one thread), from
    /// the relay port range: the reserved one for `token`; an even port when `evenPort` is set, reserving
    /// the next one too when it is `true`.
    private func relaySocket(
        token: [UInt8]?,
        evenPort: Bool?,
        on eventLoop: any EventLoop
    ) async throws -> (any Channel, reservation: [UInt8]?) {
        if let token {
            guard let reserved = table.withLockedValue({ $0.reservations.removeValue(forKey: token) }) else {
                throw ChannelError.inappropriateOperationForState
            }
            return (reserved.relay, nil)
        }
        let ports = configuration.relayPorts
        for _ in 0..<32 {
            var port = Int.random(in: ports)
            if evenPort != nil {
                port &= ~1
                guard ports.contains(port), ports.contains(port + 1) || evenPort == false else { continue }
            }
            guard let relay = try? await bindRelay(port: port, on: eventLoop) else { continue }
            guard evenPort == true else { return (relay, nil) }
            guard let next = try? await bindRelay(port: port + 1, on: eventLoop) else {
                try? await relay.close()
                continue
            }
            let token = (0..<8).map { _ in UInt8.random(in: .min ... .max) }
            table.withLockedValue { $0.reservations[token] = (next, .now() + .seconds(30)) }
            return (relay, token)
        }
        throw ChannelError.inappropriateOperationForState
    }

    private func bindRelay(port: Int, on eventLoop: any EventLoop) async throws -> any Channel {
        try await DatagramBootstrap(group: eventLoop)
            .channelOption(.datagramVectorReadMessageCount, value: DatagramReads.count)
            .channelOption(.recvAllocator, value: DatagramReads.allocator)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(TURNRelayHandler(server: self))
                }
            }
            .bind(host: relayHost, port: port)
            .get()
    }

    // MARK: Lifetimes

    func hasAllocation(_ key: ClientLink.Key) -> Bool {
        table.withLockedValue { $0.allocations[key] != nil }
    }

    /// Ends the allocation of `key`, closing its relay socket.
    func remove(_ key: ClientLink.Key) {
        let (removed, count) = table.withLockedValue { table -> (TURNAllocation?, Int) in
            guard let allocation = table.allocations.removeValue(forKey: key) else {
                return (nil, table.allocations.count)
            }
            table.perUser[allocation.username, default: 1] -= 1
            if table.perUser[allocation.username] == 0 { table.perUser[allocation.username] = nil }
            return (allocation, table.allocations.count)
        }
        guard let removed else { return }
        removed.relay.close(promise: nil)
        metrics.allocations.record(count)
    }

    /// Ends expired allocations, permissions, channels and reservations; records what remains.
    func sweep() {
        let now = NIODeadline.now()
        let (allocations, reservations) = table.withLockedValue { table in
            let expired = table.reservations.filter { $0.value.expiresAt <= now }
            for token in expired.keys { table.reservations[token] = nil }
            return (Array(table.allocations), expired.values.map(\.relay))
        }
        for relay in reservations { relay.close(promise: nil) }
        var permissions = 0
        var channels = 0
        for (key, allocation) in allocations {
            let state = allocation.sweep(now: now)
            if state.expired {
                remove(key)
            } else {
                permissions += state.permissions
                channels += state.channels
            }
        }
        metrics.permissions.record(permissions)
        metrics.channels.record(channels)
    }

    private static func text(_ attribute: STUNAttribute) -> String? {
        String(validating: attribute.value, as: UTF8.self)
    }
}

/// Why the TURN server refused a request or dropped a packet: `switchboard_turn_refused_total{reason}`.
enum TURNRefusal: String, CaseIterable, Error {
    case unauthenticated
    case staleNonce = "stale_nonce"
    case wrongCredentials = "wrong_credentials"
    case badRequest = "bad_request"
    case allocationMismatch = "allocation_mismatch"
    case addressFamily = "address_family"
    case quota
    case capacity
    case forbiddenPeer = "forbidden_peer"
    case channelInUse = "channel_in_use"
    case noAllocation = "no_allocation"
    case noChannel = "no_channel"
    case noPermission = "no_permission"
    case overBudget = "over_budget"
    /// A peer's datagram of 4 KiB or more, which may have been cut short.
    case oversized
}

/// The TURN server's figures: `switchboard_turn_allocations`, `…_permissions` and `…_channels` (gauges),
/// `switchboard_turn_relayed_packets_total{direction}` and `…_bytes_total{direction}` (to the peer, to the
/// client), and `switchboard_turn_refused_total{reason}`.
struct TURNMetrics: Sendable {
    struct Direction: Sendable {
        let packets: Counter
        let bytes: Counter

        func record(bytes count: Int) {
            packets.increment()
            bytes.increment(by: count)
        }
    }

    struct Refusals: Sendable {
        private let counters: [TURNRefusal: Counter]

        init(factory: any MetricsFactory) {
            counters = Dictionary(
                uniqueKeysWithValues: TURNRefusal.allCases.map { reason in
                    let counter = Counter(
                        label: "switchboard_turn_refused_total",
                        dimensions: [("reason", reason.rawValue)],
                        factory: factory
                    )
                    return (reason, counter)
                }
            )
        }

        func record(_ reason: TURNRefusal) {
            counters[reason]?.increment()
        }
    }

    let allocations: Gauge
    let permissions: Gauge
    let channels: Gauge
    let toPeer: Direction
    let toClient: Direction
    let refusals: Refusals

    init(factory: any MetricsFactory) {
        allocations = Gauge(label: "switchboard_turn_allocations", factory: factory)
        permissions = Gauge(label: "switchboard_turn_permissions", factory: factory)
        channels = Gauge(label: "switchboard_turn_channels", factory: factory)
        func direction(_ name: String) -> Direction {
            Direction(
                packets: Counter(
                    label: "switchboard_turn_relayed_packets_total",
                    dimensions: [("direction", name)],
                    factory: factory
                ),
                bytes: Counter(
                    label: "switchboard_turn_relayed_bytes_total",
                    dimensions: [("direction", name)],
                    factory: factory
                )
            )
        }
        toPeer = direction("to_peer")
        toClient = direction("to_client")
        refusals = Refusals(factory: factory)
    }
}
