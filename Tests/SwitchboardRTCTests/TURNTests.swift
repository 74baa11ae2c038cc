import Crypto
import Foundation
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import Testing

@testable import SwitchboardRTC
@testable import SwitchboardSTUN

/// TURN's pieces without sockets: credentials, nonces, integrity, budgets, permissions' keys, rooms.
@Suite struct TURNTests {
    static func bytes(_ hex: String) -> [UInt8] {
        let digits = Array(hex.filter(\.isHexDigit))
        return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
    }

    /// RFC 5769 §2.4: a request with long-term credentials (the password after SASLprep is "TheMatrIX").
    static let longTermRequest = bytes(
        """
        00 01 00 60 21 12 a4 42 78 ad 34 33 c6 ad 72 c0 29 da 41 2e
        00 06 00 12 e3 83 9e e3 83 88 e3 83 aa e3 83 83 e3 82 af e3 82 b9 00 00
        00 15 00 1c 66 2f 2f 34 39 39 6b 39 35 34 64 36 4f 4c 33 34 6f 4c 39 46 53 54 76 79 36 34 73 41
        00 14 00 0b 65 78 61 6d 70 6c 65 2e 6f 72 67 00
        00 08 00 14 f6 70 24 65 6d d6 4a 3e 02 b8 e0 71 2e 85 c9 a2 8c a8 96 66
        """
    )

    @Test func longTermKeyVerifiesRFC5769Request() throws {
        let request = try STUNMessage(parsing: Self.longTermRequest)
        let credentials = TURNCredentials(realm: "example.org")
        let username = String(decoding: request.attribute(STUNAttributeType.username)!.value, as: UTF8.self)
        #expect(username == "マトリックス")
        let key = credentials.key(username: username, password: "TheMatrIX")
        #expect(STUNSignature.verifying(request, raw: Self.longTermRequest, key: key) != nil)
        let wrong = credentials.key(username: username, password: "TheMatrix")
        #expect(STUNSignature.verifying(request, raw: Self.longTermRequest, key: wrong) == nil)
    }

    @Test func signedResponsesVerifyWithTheSameKey() throws {
        let key = TURNCredentials().key(username: "bob", password: "hunter2")
        #expect(key.withUnsafeBytes { Array($0) } == Self.bytes("70316adb4370b40f212a30943c652802"))
        let request = STUNMessage(
            method: STUNMethod.refresh,
            messageClass: .request,
            transactionID: Array(repeating: 7, count: 12)
        )
        for type in [STUNAttributeType.messageIntegrity, STUNAttributeType.messageIntegritySHA256] {
            let answer = request.successResponse(
                [.uint32(STUNAttributeType.lifetime, 600)],
                signature: .init(key: key, type: type)
            )
            let parsed = try STUNMessage(parsing: answer)
            #expect(STUNSignature.verifying(parsed, raw: answer, key: key)?.type == type)
            #expect(STUNMessage.hasValidFingerprint(answer))
        }
    }

    @Test func restCredentialsAreTheHMACOfTheUsernameAndExpire() {
        #expect(
            TURNCredentials.restPassword(username: "1700000000:alice", secret: "north")
                == "Cd/49soE35ICqcJF/bCTn8Z4OyE="
        )
        let credentials = TURNCredentials(secret: "north")
        let now = Date(timeIntervalSince1970: 1_699_999_000)
        #expect(credentials.password(for: "1700000000:alice", now: now) == "Cd/49soE35ICqcJF/bCTn8Z4OyE=")
        #expect(credentials.password(for: "1700000000:alice", now: Date(timeIntervalSince1970: 1_700_000_001)) == nil)
        #expect(credentials.password(for: "alice", now: now) == nil)
        #expect(TURNCredentials.restUsername(user: "alice", validFor: 60, now: now) == "1699999060:alice")
    }

    @Test func usersFilesNameTheirFirstBadLine() throws {
        let users = try TURNCredentials.users(fromFile: "# comment\n\nbob:hunter2\ncarol=a:b\n")
        #expect(users == ["bob": "hunter2", "carol": "a:b"])
        #expect(throws: TURNCredentials.UsersFileError.self) { try TURNCredentials.users(fromFile: "bob:x\nnobody\n") }
        do {
            _ = try TURNCredentials.users(fromFile: "bob:x\n:nouser\n")
        } catch {
            #expect(error.line == 2)
        }
    }

    @Test func noncesAreKnownUntilTheyExpireAndCannotBeForged() {
        let nonces = TURNNonces(lifetime: 60)
        let now = Date()
        let nonce = nonces.make(now: now)
        #expect(nonces.isFresh(nonce, now: now.addingTimeInterval(59)))
        #expect(!nonces.isFresh(nonce, now: now.addingTimeInterval(61)))
        #expect(!TURNNonces().isFresh(nonce, now: now))  // another server's key
        let parts = nonce.split(separator: "-")
        let later = String(Int(parts[0], radix: 16)! + 3600, radix: 16)
        #expect(!nonces.isFresh(later + "-" + parts[1], now: now))
        #expect(!nonces.isFresh("", now: now) && !nonces.isFresh("--", now: now) && !nonces.isFresh("zz-zz", now: now))
    }

    @Test func aByteBudgetRefillsWithTime() {
        var budget = ByteBudget(rate: 1000)
        let start = NIODeadline.now()
        let spent = [
            budget.spend(600, now: start), budget.spend(600, now: start), budget.spend(400, now: start),
            budget.spend(1, now: start), budget.spend(500, now: start + .milliseconds(500)),
            budget.spend(1001, now: start + .seconds(10)),  // never more than a second's worth
        ]
        #expect(spent == [true, false, true, false, true, false])
    }

    @Test func permissionsAreForAddressesWhateverThePort() throws {
        let v4 = try SocketAddress(ipAddress: "192.0.2.1", port: 1)
        #expect(PeerIP(v4) == PeerIP(try SocketAddress(ipAddress: "192.0.2.1", port: 2)))
        #expect(PeerIP(v4) != PeerIP(try SocketAddress(ipAddress: "192.0.2.2", port: 1)))
        #expect(PeerIP(v4) != PeerIP(try SocketAddress(ipAddress: "::ffff:192.0.2.1", port: 1)))
        #expect(
            PeerIP(try SocketAddress(ipAddress: "2001:db8::1", port: 1))
                != PeerIP(try SocketAddress(ipAddress: "2001:db8::2", port: 1))
        )
    }

    @Test func stunAddressesRoundTripThroughSocketAddresses() throws {
        for text in ["192.0.2.1", "2001:db8::1"] {
            let address = try SocketAddress(ipAddress: text, port: 3478)
            #expect(STUNAddress(address)?.socketAddress == address)
        }
    }

    @Test func roomsAdmitUpToTheirLimitAndDeliver() throws {
        let rooms = SignalingRooms(maxPeersPerRoom: 2, metrics: NOOPMetricsHandler.instance)
        let received = NIOLockedValueBox([String]())
        let collect = { (name: String) -> SignalingRooms.Deliver in
            { text in received.withLockedValue { $0.append("\(name):\(String(buffer: text))") } }
        }
        #expect(try rooms.join(room: "r", peer: "a", deliver: collect("a")) == [])
        #expect(try rooms.join(room: "r", peer: "b", deliver: collect("b")) == ["a"])
        #expect(throws: SignalingRooms.JoinError.self) { try rooms.join(room: "r", peer: "c", deliver: collect("c")) }
        #expect(try rooms.join(room: "other", peer: "a", deliver: collect("a2")) == [])
        #expect(rooms.deliver(ByteBuffer(string: "hi"), to: "b", in: "r"))
        #expect(!rooms.deliver(ByteBuffer(string: "hi"), to: "z", in: "r"))
        rooms.broadcast(ByteBuffer(string: "all"), in: "r", from: "a")
        rooms.leave(room: "r", peer: "b")
        #expect(!rooms.deliver(ByteBuffer(string: "gone"), to: "b", in: "r"))
        #expect(received.withLockedValue { $0 } == ["b:hi", "b:all"])
    }
}
