/// A STUN message (RFC 8489 §5): a 20-byte header — two zero bits, the method and class, the body's
/// length, the magic cookie and a 96-bit transaction ID — then attributes, each padded to 4 bytes.
///
/// Parsing checks everything the header and the attribute framing promise and nothing else: what the
/// attributes mean is the server's business. Encoding writes attributes as given, padded with zeros.
public struct STUNMessage: Sendable, Equatable {
    public enum Class: UInt16, Sendable {
        case request = 0
        case indication = 1
        case successResponse = 2
        case errorResponse = 3
    }

    public static let magicCookie: UInt32 = 0x2112_A442
    public static let headerLength = 20

    /// The 12-bit method: `STUNMethod.binding`, TURN's methods.
    public var method: UInt16
    public var messageClass: Class
    /// 12 bytes.
    public var transactionID: [UInt8]
    public var attributes: [STUNAttribute]

    /// Whether the message is a STUN message rather than ChannelData: its first two bits are zero.
    public static func isSTUN(firstByte: UInt8) -> Bool { firstByte & 0xC0 == 0 }

    public init(method: UInt16, messageClass: Class, transactionID: [UInt8], attributes: [STUNAttribute] = []) {
        precondition(transactionID.count == 12, "a transaction ID is 12 bytes")
        self.method = method
        self.messageClass = messageClass
        self.transactionID = transactionID
        self.attributes = attributes
    }

    /// The first attribute of `type`.
    public func attribute(_ type: UInt16) -> STUNAttribute? {
        attributes.first { $0.type == type }
    }

    /// The bytes' message, or why they are not one.
    public init(parsing bytes: [UInt8]) throws(STUNParseError) {
        guard bytes.count >= Self.headerLength else { throw .tooShort }
        let type = bytes.uint16(at: 0)
        guard type & 0xC000 == 0 else { throw .notSTUN }
        let length = Int(bytes.uint16(at: 2))
        guard bytes.uint32(at: 4) == Self.magicCookie else { throw .badMagicCookie }
        guard length % 4 == 0 else { throw .lengthNotMultipleOfFour }
        guard Self.headerLength + length == bytes.count else { throw .lengthMismatch }
        method = (type & 0x000F) | ((type & 0x00E0) >> 1) | ((type & 0x3E00) >> 2)
        messageClass = Class(rawValue: ((type & 0x0010) >> 4) | ((type & 0x0100) >> 7))!
        transactionID = Array(bytes[8..<20])
        attributes = []
        var offset = Self.headerLength
        while offset < bytes.count {
            guard offset + 4 <= bytes.count else { throw .attributePastEnd }
            let attributeType = bytes.uint16(at: offset)
            let valueLength = Int(bytes.uint16(at: offset + 2))
            let valueStart = offset + 4
            guard valueStart + valueLength <= bytes.count else { throw .attributePastEnd }
            attributes.append(
                STUNAttribute(type: attributeType, value: Array(bytes[valueStart..<valueStart + valueLength]))
            )
            offset = valueStart + STUNAttribute.padded(valueLength)
        }
    }

    /// The message as sent. `integrity`, when given, signs the message so far (with the header's length
    /// counting through the integrity attribute, RFC 8489 §14.5) and its answer becomes a
    /// MESSAGE-INTEGRITY (20 bytes, HMAC-SHA1) or MESSAGE-INTEGRITY-SHA256 (32 bytes) attribute;
    /// `fingerprint` appends FINGERPRINT last.
    public func encoded(
        integrity: (type: UInt16, sign: ([UInt8]) -> [UInt8])? = nil,
        fingerprint: Bool = false
    ) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(
            Self.headerLength + attributes.reduce(0) { $0 + 4 + STUNAttribute.padded($1.value.count) }
        )
        bytes.appendUInt16(encodedType)
        bytes.appendUInt16(0)  // the length, set below
        bytes.appendUInt32(Self.magicCookie)
        bytes += transactionID
        for attribute in attributes {
            attribute.append(to: &bytes)
        }
        if let integrity {
            let size = integrity.type == STUNAttributeType.messageIntegritySHA256 ? 32 : 20
            Self.setLength(of: &bytes, to: bytes.count - Self.headerLength + 4 + size)
            STUNAttribute(type: integrity.type, value: integrity.sign(bytes)).append(to: &bytes)
        }
        if fingerprint {
            Self.setLength(of: &bytes, to: bytes.count - Self.headerLength + 8)
            let crc = CRC32.checksum(bytes) ^ 0x5354_554E
            STUNAttribute(type: STUNAttributeType.fingerprint, value: [UInt8](bigEndian: crc)).append(to: &bytes)
        }
        Self.setLength(of: &bytes, to: bytes.count - Self.headerLength)
        return bytes
    }

    /// What the integrity attribute at `index` of the message parsed from `raw` covers: the message up to
    /// that attribute, with the header's length counting through it. `nil` when `raw` is not that message.
    public static func integrityInput(of raw: [UInt8], attributeAt index: Int) -> [UInt8]? {
        guard let (start, end) = attributeBounds(in: raw, at: index) else { return nil }
        var covered = Array(raw[..<start])
        setLength(of: &covered, to: end - headerLength)
        return covered
    }

    /// Whether the message parsed from `raw` ends with a FINGERPRINT that matches it.
    public static func hasValidFingerprint(_ raw: [UInt8]) -> Bool {
        guard raw.count >= headerLength + 8,
            raw.uint16(at: raw.count - 8) == STUNAttributeType.fingerprint,
            raw.uint16(at: raw.count - 6) == 4
        else { return false }
        return CRC32.checksum(raw[..<(raw.count - 8)]) ^ 0x5354_554E == raw.uint32(at: raw.count - 4)
    }

    /// The type field: method bits M0–M11 around the class bits C0 (bit 4) and C1 (bit 8).
    private var encodedType: UInt16 {
        let classBits = ((messageClass.rawValue & 1) << 4) | ((messageClass.rawValue & 2) << 7)
        return (method & 0x000F) | ((method & 0x0070) << 1) | ((method & 0x0F80) << 2) | classBits
    }

    private static func setLength(of bytes: inout [UInt8], to length: Int) {
        bytes[2] = UInt8(truncatingIfNeeded: length >> 8)
        bytes[3] = UInt8(truncatingIfNeeded: length)
    }

    /// Where the attribute at `index` starts and where its padded value ends, in a well-framed message.
    private static func attributeBounds(in raw: [UInt8], at index: Int) -> (start: Int, end: Int)? {
        var offset = headerLength
        var current = 0
        while offset + 4 <= raw.count {
            let end = offset + 4 + STUNAttribute.padded(Int(raw.uint16(at: offset + 2)))
            guard end <= raw.count else { return nil }
            if current == index { return (offset, end) }
            offset = end
            current += 1
        }
        return nil
    }
}

/// Why bytes are not a STUN message; the server drops such datagrams without an answer (RFC 8489 §6.3).
public enum STUNParseError: Error, Sendable, Equatable {
    case tooShort
    /// The first two bits are not zero: ChannelData or another protocol.
    case notSTUN
    case badMagicCookie
    case lengthNotMultipleOfFour
    case lengthMismatch
    case attributePastEnd
}

/// STUN's methods (and TURN's, RFC 8656 §17).
public enum STUNMethod {
    public static let binding: UInt16 = 0x001
    public static let allocate: UInt16 = 0x003
    public static let refresh: UInt16 = 0x004
    public static let send: UInt16 = 0x006
    public static let data: UInt16 = 0x007
    public static let createPermission: UInt16 = 0x008
    public static let channelBind: UInt16 = 0x009
}

extension [UInt8] {
    func uint16(at offset: Int) -> UInt16 {
        UInt16(self[offset]) << 8 | UInt16(self[offset + 1])
    }

    func uint32(at offset: Int) -> UInt32 {
        UInt32(uint16(at: offset)) << 16 | UInt32(uint16(at: offset + 2))
    }

    mutating func appendUInt16(_ value: UInt16) {
        append(UInt8(value >> 8))
        append(UInt8(truncatingIfNeeded: value))
    }

    mutating func appendUInt32(_ value: UInt32) {
        appendUInt16(UInt16(value >> 16))
        appendUInt16(UInt16(truncatingIfNeeded: value))
    }

    init(bigEndian value: UInt32) {
        self = []
        appendUInt32(value)
    }
}
