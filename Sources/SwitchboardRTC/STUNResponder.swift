import CoreMetrics
import NIOCore
import SwitchboardSTUN

/// Answers STUN requests, whatever transport brought them (RFC 8489 §6.3): a Binding request gets the
/// address the server saw it come from (XOR-MAPPED-ADDRESS), SOFTWARE and FINGERPRINT; a request with a
/// comprehension-required attribute the server does not know gets 420 with UNKNOWN-ATTRIBUTES; another
/// method gets 400. What is not a well-formed request — a bad header, attributes past the end, a wrong
/// FINGERPRINT, an indication or a response — is dropped without an answer.
struct STUNResponder: Sendable {
    static let software = STUNAttribute.software("Switchboard")

    /// The attributes a Binding request may carry that this server understands (or may ignore).
    private static let understood: Set<UInt16> = [
        STUNAttributeType.username, STUNAttributeType.messageIntegrity, STUNAttributeType.messageIntegritySHA256,
        STUNAttributeType.realm, STUNAttributeType.nonce, STUNAttributeType.passwordAlgorithm,
        STUNAttributeType.userhash, STUNAttributeType.priority, STUNAttributeType.useCandidate,
    ]

    let metrics: STUNMetrics

    /// The answer to `bytes` from `sender`, or `nil` for none.
    func answer(_ bytes: [UInt8], from sender: SocketAddress) -> [UInt8]? {
        guard let request = try? STUNMessage(parsing: bytes), request.messageClass == .request,
            request.attribute(STUNAttributeType.fingerprint) == nil || STUNMessage.hasValidFingerprint(bytes)
        else {
            metrics.dropped.increment()
            return nil
        }
        let unknown = request.attributes.filter { $0.isComprehensionRequired && !Self.understood.contains($0.type) }
        if !unknown.isEmpty {
            metrics.refused.increment()
            return error(420, "Unknown Attribute", to: request, extra: [.unknownAttributes(unknown.map(\.type))])
        }
        guard request.method == STUNMethod.binding, let address = STUNAddress(sender) else {
            metrics.refused.increment()
            return error(400, "Bad Request", to: request)
        }
        metrics.bindings.increment()
        let response = STUNMessage(
            method: STUNMethod.binding,
            messageClass: .successResponse,
            transactionID: request.transactionID,
            attributes: [
                STUNAttribute(
                    type: STUNAttributeType.xorMappedAddress,
                    value: address.xorValue(transactionID: request.transactionID)
                ),
                Self.software,
            ]
        )
        return response.encoded(fingerprint: true)
    }

    private func error(_ code: Int, _ reason: String, to request: STUNMessage, extra: [STUNAttribute] = []) -> [UInt8] {
        STUNMessage(
            method: request.method,
            messageClass: .errorResponse,
            transactionID: request.transactionID,
            attributes: [.errorCode(code, reason: reason)] + extra + [Self.software]
        )
        .encoded(fingerprint: true)
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
}
