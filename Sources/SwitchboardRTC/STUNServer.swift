import CoreMetrics
import Crypto
import NIOCore
import SwitchboardSTUN

/// Everything that arrives on the STUN/TURN ports, whatever transport brought it (RFC 8489 §6.3,
/// RFC 8656): ChannelData goes to its allocation's peer; a Binding request gets the address the server
/// saw it come from (XOR-MAPPED-ADDRESS), signed when the request is signed with TURN's long-term
/// credentials; TURN's requests and Send indications go to the TURN server; a
/// request with a comprehension-required attribute the server does not know gets 420 with
/// UNKNOWN-ATTRIBUTES; another method gets 400. What is not a well-formed message — a bad header,
/// attributes past the end, a wrong FINGERPRINT, a response — is dropped without an answer.
final class STUNServer: Sendable {
    /// The attributes a request may carry that this server understands (or may ignore).
    private static let understood: Set<UInt16> = [
        STUNAttributeType.username, STUNAttributeType.messageIntegrity, STUNAttributeType.messageIntegritySHA256,
        STUNAttributeType.realm, STUNAttributeType.nonce, STUNAttributeType.passwordAlgorithm,
        STUNAttributeType.userhash, STUNAttributeType.priority, STUNAttributeType.useCandidate,
        STUNAttributeType.channelNumber, STUNAttributeType.lifetime, STUNAttributeType.xorPeerAddress,
        STUNAttributeType.data, STUNAttributeType.requestedAddressFamily, STUNAttributeType.evenPort,
        STUNAttributeType.requestedTransport, STUNAttributeType.dontFragment, STUNAttributeType.reservationToken,
    ]

    let metrics: STUNMetrics
    /// `nil` while TURN is off (no users, no secret).
    let turn: TURNServer?

    init(metrics: STUNMetrics, turn: TURNServer?) {
        self.metrics = metrics
        self.turn = turn
    }

    func receive(_ buffer: ByteBuffer, from link: ClientLink) {
        guard let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else {
            return metrics.dropped.increment()
        }
        if ChannelData.isChannelData(firstByte: first), let turn {
            return turn.relayToPeer(channelData: buffer, from: link)
        }
        let bytes = Array(buffer.readableBytesView)
        guard let message = try? STUNMessage(parsing: bytes),
            message.attribute(STUNAttributeType.fingerprint) == nil || STUNMessage.hasValidFingerprint(bytes)
        else { return metrics.dropped.increment() }
        switch message.messageClass {
        case .indication where message.method == STUNMethod.send && turn != nil:
            turn?.send(message, from: link)
        case .request:
            answer(message, raw: bytes, from: link)
        default:
            metrics.dropped.increment()
        }
    }

    private func answer(_ request: STUNMessage, raw: [UInt8], from link: ClientLink) {
        let unknown = request.attributes.filter { $0.isComprehensionRequired && !Self.understood.contains($0.type) }
        if !unknown.isEmpty {
            metrics.refused.increment()
            return link.send(
                request.errorResponse(420, "Unknown Attribute", extra: [.unknownAttributes(unknown.map(\.type))])
            )
        }
        if let turn, TURNServer.methods.contains(request.method) {
            return turn.handle(request, raw: raw, from: link)
        }
        switch request.method {
        case STUNMethod.binding:
            guard let address = STUNAddress(link.remote) else { return metrics.dropped.increment() }
            // A signed request is checked with TURN's long-term credentials and its answer signed.
            var signature: STUNSignature?
            if let turn, request.hasIntegrity {
                guard let (_, verified) = turn.authenticate(request, raw: raw, from: link) else {
                    return metrics.refused.increment()
                }
                signature = verified
            }
            metrics.bindings.increment()
            link.send(
                request.successResponse(
                    [.xorAddress(STUNAttributeType.xorMappedAddress, address, transactionID: request.transactionID)],
                    signature: signature
                )
            )
        default:
            metrics.refused.increment()
            link.send(request.errorResponse(400, "Bad Request"))
        }
    }
}

/// How a response proves it comes from the server that knows the client's key (RFC 8489 §9.2.3): the
/// integrity attribute the request used, computed with the same key.
struct STUNSignature: Sendable {
    let key: SymmetricKey
    let type: UInt16

    func sign(_ bytes: [UInt8]) -> [UInt8] {
        if type == STUNAttributeType.messageIntegritySHA256 {
            return Array(HMAC<SHA256>.authenticationCode(for: bytes, using: key))
        }
        return Array(HMAC<Insecure.SHA1>.authenticationCode(for: bytes, using: key))
    }

    /// The signature of the request parsed from `raw`, when its first integrity attribute verifies
    /// under `key`; `nil` when it has none or it does not verify.
    static func verifying(_ request: STUNMessage, raw: [UInt8], key: SymmetricKey) -> STUNSignature? {
        guard
            let index = request.attributes.firstIndex(where: {
                $0.type == STUNAttributeType.messageIntegrity || $0.type == STUNAttributeType.messageIntegritySHA256
            }),
            let covered = STUNMessage.integrityInput(of: raw, attributeAt: index)
        else { return nil }
        let attribute = request.attributes[index]
        let valid =
            attribute.type == STUNAttributeType.messageIntegritySHA256
            ? HMAC<SHA256>.isValidAuthenticationCode(attribute.value, authenticating: covered, using: key)
            : HMAC<Insecure.SHA1>.isValidAuthenticationCode(attribute.value, authenticating: covered, using: key)
        return valid ? STUNSignature(key: key, type: attribute.type) : nil
    }
}

extension STUNMessage {
    static let software = STUNAttribute.software("Switchboard")

    /// Whether the message carries MESSAGE-INTEGRITY or MESSAGE-INTEGRITY-SHA256.
    var hasIntegrity: Bool {
        attribute(STUNAttributeType.messageIntegrity) != nil
            || attribute(STUNAttributeType.messageIntegritySHA256) != nil
    }

    /// A success response with `attributes` and SOFTWARE, signed when `signature` is given, and FINGERPRINT.
    func successResponse(_ attributes: [STUNAttribute], signature: STUNSignature? = nil) -> [UInt8] {
        response(.successResponse, attributes: attributes + [Self.software], signature: signature)
    }

    /// An error response with ERROR-CODE, `extra` and SOFTWARE, signed when `signature` is given.
    func errorResponse(
        _ code: Int,
        _ reason: String,
        extra: [STUNAttribute] = [],
        signature: STUNSignature? = nil
    ) -> [UInt8] {
        response(
            .errorResponse,
            attributes: [.errorCode(code, reason: reason)] + extra + [Self.software],
            signature: signature
        )
    }

    private func response(_ messageClass: Class, attributes: [STUNAttribute], signature: STUNSignature?) -> [UInt8] {
        STUNMessage(method: method, messageClass: messageClass, transactionID: transactionID, attributes: attributes)
            .encoded(integrity: signature.map { signature in (signature.type, signature.sign) }, fingerprint: true)
    }
}

/// `switchboard_stun_requests_total{outcome}`: Binding answered, refused with an error, or dropped.
struct STUNMetrics: Sendable {
    let bindings: Counter
    let refused: Counter
    let dropped: Counter

    init(factory: any MetricsFactory) {
        func counter(_ outcome: String) -> Counter {
            Counter(label: "switchboard_stun_requests_total", dimensions: [("outcome", outcome)], factory: factory)
        }
        bindings = counter("binding")
        refused = counter("error")
        dropped = counter("dropped")
    }
}

extension STUNAddress {
    /// The address of an IPv4 or IPv6 socket address.
    init?(_ address: SocketAddress) {
        guard let port = address.port, let port = UInt16(exactly: port) else { return nil }
        switch address {
        case .v4(let v4): self = .ipv4(withUnsafeBytes(of: v4.address.sin_addr) { Array($0) }, port: port)
        case .v6(let v6): self = .ipv6(withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }, port: port)
        case .unixDomainSocket: return nil
        }
    }

    /// The socket address this is.
    var socketAddress: SocketAddress? {
        switch self {
        case .ipv4(let bytes, let port), .ipv6(let bytes, let port):
            try? SocketAddress(packedIPAddress: ByteBuffer(bytes: bytes), port: Int(port))
        }
    }
}
