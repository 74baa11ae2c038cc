import Crypto
import Foundation
import Testing

@testable import SwitchboardSTUN

/// RFC 5769's test vectors, and the ways a message can be malformed.
@Suite struct STUNMessageTests {
    static func bytes(_ hex: String) -> [UInt8] {
        let digits = Array(hex.filter(\.isHexDigit))
        return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
    }

    static func hmacSHA1(key: [UInt8], _ data: [UInt8]) -> [UInt8] {
        Array(HMAC<Insecure.SHA1>.authenticationCode(for: data, using: SymmetricKey(data: key)))
    }

    /// RFC 5769 §2.1: a Binding request with short-term credentials.
    static let request = bytes(
        """
        00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
        80 22 00 10 53 54 55 4e 20 74 65 73 74 20 63 6c 69 65 6e 74
        00 24 00 04 6e 00 01 ff 80 29 00 08 93 2f f9 b1 51 26 3b 36
        00 06 00 09 65 76 74 6a 3a 68 36 76 59 20 20 20
        00 08 00 14 9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49 c1 b5 71 a2
        80 28 00 04 e5 7a 3b cf
        """
    )

    /// RFC 5769 §2.2 and §2.3: Binding responses carrying 192.0.2.1:32853 and
    /// 2001:db8:1234:5678:11:2233:4455:6677 port 32853.
    static let ipv4Response = bytes(
        """
        01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
        80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
        00 20 00 08 00 01 a1 47 e1 12 a6 43
        00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53 f0 6b e7 d7
        80 28 00 04 c0 7d 4c 96
        """
    )
    static let ipv6Response = bytes(
        """
        01 01 00 48 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
        80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
        00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9
        00 08 00 14 a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75 bf e3 ed 41
        80 28 00 04 c8 fb 0b 4c
        """
    )

    /// RFC 5769 §2.4: a request with long-term credentials (user "マトリックス", realm example.org).
    static let longTermRequest = bytes(
        """
        00 01 00 60 21 12 a4 42 78 ad 34 33 c6 ad 72 c0 29 da 41 2e
        00 06 00 12 e3 83 9e e3 83 88 e3 83 aa e3 83 83 e3 82 af e3 82 b9 00 00
        00 15 00 1c 66 2f 2f 34 39 39 6b 39 35 34 64 36 4f 4c 33 34 6f 4c 39 46 53 54 76 79 36 34 73 41
        00 14 00 0b 65 78 61 6d 70 6c 65 2e 6f 72 67 00
        00 08 00 14 f6 70 24 65 6d d6 4a 3e 02 b8 e0 71 2e 85 c9 a2 8c a8 96 66
        """
    )

    @Test func theSampleRequestParsesAndItsIntegrityAndFingerprintCheck() throws {
        let message = try STUNMessage(parsing: Self.request)
        #expect(message.method == STUNMethod.binding)
        #expect(message.messageClass == .request)
        #expect(message.attribute(STUNAttributeType.software)?.value == Array("STUN test client".utf8))
        #expect(message.attribute(STUNAttributeType.username)?.value == Array("evtj:h6vY".utf8))
        #expect(STUNMessage.hasValidFingerprint(Self.request))
        let index = try #require(message.attributes.firstIndex { $0.type == STUNAttributeType.messageIntegrity })
        let covered = try #require(STUNMessage.integrityInput(of: Self.request, attributeAt: index))
        let key = Array("VOkJxbRl1RmTxUk/WvJxBt".utf8)
        #expect(Self.hmacSHA1(key: key, covered) == message.attributes[index].value)
    }

    @Test(arguments: [
        (ipv4Response, STUNAddress.ipv4([192, 0, 2, 1], port: 32853)),
        (
            ipv6Response,
            .ipv6(
                [0x20, 0x01, 0x0d, 0xb8, 0x12, 0x34, 0x56, 0x78, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77],
                port: 32853
            )
        ),
    ])
    func theSampleResponsesCarryTheirAddress(raw: [UInt8], address: STUNAddress) throws {
        let message = try STUNMessage(parsing: raw)
        #expect(message.messageClass == .successResponse)
        #expect(STUNMessage.hasValidFingerprint(raw))
        let value = try #require(message.attribute(STUNAttributeType.xorMappedAddress)?.value)
        #expect(STUNAddress(xorValue: value, transactionID: message.transactionID) == address)
        #expect(address.xorValue(transactionID: message.transactionID) == value)
        let index = try #require(message.attributes.firstIndex { $0.type == STUNAttributeType.messageIntegrity })
        let covered = try #require(STUNMessage.integrityInput(of: raw, attributeAt: index))
        #expect(Self.hmacSHA1(key: Array("VOkJxbRl1RmTxUk/WvJxBt".utf8), covered) == message.attributes[index].value)
    }

    @Test func theLongTermRequestSignsWithTheMD5OfUserRealmAndPassword() throws {
        let message = try STUNMessage(parsing: Self.longTermRequest)
        #expect(message.attribute(STUNAttributeType.realm)?.value == Array("example.org".utf8))
        let key = Array(Insecure.MD5.hash(data: Array("マトリックス:example.org:TheMatrIX".utf8)))
        let covered = try #require(STUNMessage.integrityInput(of: Self.longTermRequest, attributeAt: 3))
        #expect(Self.hmacSHA1(key: key, covered) == message.attributes[3].value)
    }

    @Test func encodingSignsAndFingerprintsWhatItWrites() throws {
        let key = Array("a password".utf8)
        let message = STUNMessage(
            method: STUNMethod.binding,
            messageClass: .successResponse,
            transactionID: Array(0..<12),
            attributes: [.software("Switchboard"), .errorCode(420, reason: "Unknown Attribute")]
        )
        let raw = message.encoded(
            integrity: (STUNAttributeType.messageIntegrity, { Self.hmacSHA1(key: key, $0) }),
            fingerprint: true
        )
        #expect(raw.count % 4 == 0)
        #expect(STUNMessage.hasValidFingerprint(raw))
        let parsed = try STUNMessage(parsing: raw)
        #expect(parsed.method == message.method && parsed.messageClass == .successResponse)
        #expect(Array(parsed.attributes.prefix(2)) == message.attributes)
        #expect(
            parsed.attributes.map(\.type).suffix(2) == [
                STUNAttributeType.messageIntegrity, STUNAttributeType.fingerprint,
            ]
        )
        let covered = try #require(STUNMessage.integrityInput(of: raw, attributeAt: 2))
        #expect(Self.hmacSHA1(key: key, covered) == parsed.attributes[2].value)
        #expect(try STUNMessage(parsing: message.encoded()) == message)
    }

    @Test func malformedMessagesSayWhy() {
        var badCookie = Self.request
        badCookie[4] = 0
        var notMultipleOfFour = Self.request
        notMultipleOfFour[3] = 0x57
        var pastEnd = Array(Self.request.prefix(24)) + [0, 0x40, 0, 0]
        pastEnd[3] = 8
        var channelData = Self.request
        channelData[0] = 0x40
        let cases: [([UInt8], STUNParseError)] = [
            (Array(Self.request.prefix(19)), .tooShort),
            (channelData, .notSTUN),
            (badCookie, .badMagicCookie),
            (notMultipleOfFour, .lengthNotMultipleOfFour),
            (Array(Self.request.dropLast(4)), .lengthMismatch),
            (pastEnd, .attributePastEnd),
        ]
        for (raw, expected) in cases {
            #expect(throws: expected) { try STUNMessage(parsing: raw) }
        }
        var corrupted = Self.request
        corrupted[30] ^= 1
        #expect(!STUNMessage.hasValidFingerprint(corrupted))
    }
}

/// ChannelData framing (RFC 8656 §12.4).
@Suite struct ChannelDataTests {
    @Test func parsesWithOrWithoutPaddingAndRefusesWhatIsNotOne() throws {
        let message = ChannelData.header(channel: 0x4001, dataLength: 3) + [1, 2, 3]
        #expect(ChannelData(parsing: message) == ChannelData(channel: 0x4001, data: [1, 2, 3][...]))
        #expect(ChannelData(parsing: message + [0])?.data == [1, 2, 3][...])
        #expect(ChannelData(parsing: Array(message.dropLast())) == nil)  // shorter than its length
        #expect(ChannelData(parsing: ChannelData.header(channel: 0x3FFF, dataLength: 0)) == nil)
        #expect(ChannelData(parsing: [0x40]) == nil)
        #expect(ChannelData.isChannelData(firstByte: 0x40) && !ChannelData.isChannelData(firstByte: 0x00))
        #expect(ChannelData.wireLength(dataLength: 5, padded: true) == 12)
        #expect(ChannelData.wireLength(dataLength: 5, padded: false) == 9)
    }
}
