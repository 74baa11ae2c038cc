/// One attribute: a 16-bit type and a value, padded to a multiple of 4 bytes on the wire.
public struct STUNAttribute: Sendable, Equatable {
    public var type: UInt16
    public var value: [UInt8]

    public init(type: UInt16, value: [UInt8]) {
        self.type = type
        self.value = value
    }

    /// Types below 0x8000 must be understood by the receiver, or the request fails with 420.
    public var isComprehensionRequired: Bool { type < 0x8000 }

    /// `length` rounded up to a multiple of 4.
    public static func padded(_ length: Int) -> Int { (length + 3) & ~3 }

    func append(to bytes: inout [UInt8]) {
        bytes.appendUInt16(type)
        bytes.appendUInt16(UInt16(truncatingIfNeeded: value.count))
        bytes += value
        bytes += repeatElement(0, count: Self.padded(value.count) - value.count)
    }
}

/// The attribute types Switchboard reads or writes (RFC 8489 §18.3, RFC 8656 §18 for TURN's, RFC 8445
/// for ICE's).
public enum STUNAttributeType {
    public static let mappedAddress: UInt16 = 0x0001
    public static let username: UInt16 = 0x0006
    public static let messageIntegrity: UInt16 = 0x0008
    public static let errorCode: UInt16 = 0x0009
    public static let unknownAttributes: UInt16 = 0x000A
    public static let channelNumber: UInt16 = 0x000C
    public static let lifetime: UInt16 = 0x000D
    public static let xorPeerAddress: UInt16 = 0x0012
    public static let data: UInt16 = 0x0013
    public static let realm: UInt16 = 0x0014
    public static let nonce: UInt16 = 0x0015
    public static let xorRelayedAddress: UInt16 = 0x0016
    public static let requestedAddressFamily: UInt16 = 0x0017
    public static let evenPort: UInt16 = 0x0018
    public static let requestedTransport: UInt16 = 0x0019
    public static let dontFragment: UInt16 = 0x001A
    public static let reservationToken: UInt16 = 0x0022
    public static let messageIntegritySHA256: UInt16 = 0x001C
    public static let passwordAlgorithm: UInt16 = 0x001D
    public static let userhash: UInt16 = 0x001E
    public static let xorMappedAddress: UInt16 = 0x0020
    public static let priority: UInt16 = 0x0024
    public static let useCandidate: UInt16 = 0x0025
    public static let additionalAddressFamily: UInt16 = 0x8000
    public static let software: UInt16 = 0x8022
    public static let fingerprint: UInt16 = 0x8028
    public static let iceControlled: UInt16 = 0x8029
    public static let iceControlling: UInt16 = 0x802A
}

/// A transport address as MAPPED-ADDRESS and XOR-MAPPED-ADDRESS carry it (RFC 8489 §14.1–14.2).
public enum STUNAddress: Sendable, Equatable {
    case ipv4([UInt8], port: UInt16)
    case ipv6([UInt8], port: UInt16)

    /// XOR-MAPPED-ADDRESS's value: the port XORed with the cookie's high half, the address with the
    /// cookie (and for IPv6 the transaction ID after it).
    public func xorValue(transactionID: [UInt8]) -> [UInt8] {
        let mask = [UInt8](bigEndian: STUNMessage.magicCookie) + transactionID
        switch self {
        case .ipv4(let address, let port):
            return [0, 0x01] + Self.xor(port, mask) + zip(address, mask).map { $0 ^ $1 }
        case .ipv6(let address, let port):
            return [0, 0x02] + Self.xor(port, mask) + zip(address, mask).map { $0 ^ $1 }
        }
    }

    /// The address an XOR-MAPPED-ADDRESS value carries; `nil` when it is malformed.
    public init?(xorValue value: [UInt8], transactionID: [UInt8]) {
        let mask = [UInt8](bigEndian: STUNMessage.magicCookie) + transactionID
        guard value.count >= 8 else { return nil }
        let port = value.uint16(at: 2) ^ 0x2112
        let address = zip(value[4...], mask).map { $0 ^ $1 }
        switch (value[1], value.count) {
        case (0x01, 8): self = .ipv4(address, port: port)
        case (0x02, 20): self = .ipv6(address, port: port)
        default: return nil
        }
    }

    private static func xor(_ port: UInt16, _ mask: [UInt8]) -> [UInt8] {
        [UInt8(port >> 8) ^ mask[0], UInt8(truncatingIfNeeded: port) ^ mask[1]]
    }
}

extension STUNAttribute {
    /// ERROR-CODE: the class (hundreds) and number, then a UTF-8 reason phrase.
    public static func errorCode(_ code: Int, reason: String) -> STUNAttribute {
        STUNAttribute(
            type: STUNAttributeType.errorCode,
            value: [0, 0, UInt8(code / 100), UInt8(code % 100)] + Array(reason.utf8)
        )
    }

    /// UNKNOWN-ATTRIBUTES: the types a request carried that the server does not understand.
    public static func unknownAttributes(_ types: [UInt16]) -> STUNAttribute {
        var value: [UInt8] = []
        for type in types {
            value.appendUInt16(type)
        }
        return STUNAttribute(type: STUNAttributeType.unknownAttributes, value: value)
    }

    public static func software(_ name: String) -> STUNAttribute {
        STUNAttribute(type: STUNAttributeType.software, value: Array(name.utf8))
    }
}

extension STUNAttribute {
    /// A 32-bit value, such as LIFETIME's seconds.
    public static func uint32(_ type: UInt16, _ value: UInt32) -> STUNAttribute {
        STUNAttribute(type: type, value: [UInt8](bigEndian: value))
    }

    /// The value read as a 32-bit number; `nil` unless it is 4 bytes.
    public var uint32Value: UInt32? {
        value.count == 4 ? value.uint32(at: 0) : nil
    }

    /// An XOR-encoded address attribute (XOR-MAPPED-, XOR-RELAYED-, XOR-PEER-ADDRESS).
    public static func xorAddress(_ type: UInt16, _ address: STUNAddress, transactionID: [UInt8]) -> STUNAttribute {
        STUNAttribute(type: type, value: address.xorValue(transactionID: transactionID))
    }
}
