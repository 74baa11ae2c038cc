import Crypto
import Foundation

/// Long-term credentials (RFC 8489 §9.2) for TURN: passwords from a users file, and the TURN REST API's
/// time-limited ones — a username `EXPIRY:USER` whose password is the base64 HMAC-SHA1 of that username
/// under a shared secret, as coturn's `use-auth-secret` — so a web page gets credentials from
/// `/v1/rtc/ice-servers` without an entry in any file. Without users and secret, TURN is off.
public struct TURNCredentials: Sendable {
    public var realm: String
    /// Passwords by username.
    public var users: [String: String]
    /// The TURN REST API's shared secret.
    public var secret: String?

    public init(realm: String = "switchboard", users: [String: String] = [:], secret: String? = nil) {
        self.realm = realm
        self.users = users
        self.secret = secret
    }

    /// Whether any client can authenticate.
    public var isEnabled: Bool { !users.isEmpty || secret != nil }

    /// The password of `username`; `nil` when it is unknown or its REST expiry has passed.
    func password(for username: String, now: Date = Date()) -> String? {
        if let password = users[username] { return password }
        guard let secret,
            let expiry = username.split(separator: ":", maxSplits: 1).first.flatMap({ Int($0) }),
            Double(expiry) > now.timeIntervalSince1970
        else { return nil }
        return Self.restPassword(username: username, secret: secret)
    }

    /// The key that signs a user's messages: MD5 of `username:realm:password` (RFC 8489 §9.2.2).
    func key(username: String, password: String) -> SymmetricKey {
        SymmetricKey(data: Insecure.MD5.hash(data: Array("\(username):\(realm):\(password)".utf8)))
    }

    /// The REST API password of `username`.
    public static func restPassword(username: String, secret: String) -> String {
        let code = HMAC<Insecure.SHA1>.authenticationCode(
            for: Array(username.utf8),
            using: SymmetricKey(data: Array(secret.utf8))
        )
        return Data(code).base64EncodedString()
    }

    /// A REST API username for `user`, valid for `seconds` from `now`.
    public static func restUsername(user: String, validFor seconds: Int, now: Date = Date()) -> String {
        "\(Int(now.timeIntervalSince1970) + seconds):\(user)"
    }

    /// The users of a users file: a `user:password` (or `user=password`) per line; blank lines and lines
    /// starting with `#` are skipped.
    /// - Throws: `UsersFileError` naming the first line that is neither.
    public static func users(fromFile contents: String) throws(UsersFileError) -> [String: String] {
        var users: [String: String] = [:]
        for (index, line) in contents.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let text = line.trimmingCharacters(in: .whitespaces)
            guard !text.isEmpty, !text.hasPrefix("#") else { continue }
            guard let separator = text.firstIndex(where: { $0 == ":" || $0 == "=" }),
                separator != text.startIndex, text.index(after: separator) != text.endIndex
            else { throw UsersFileError(line: index + 1) }
            users[String(text[..<separator])] = String(text[text.index(after: separator)...])
        }
        return users
    }

    public struct UsersFileError: Error, Sendable {
        public var line: Int
    }
}

/// Nonces that carry their own expiry and a MAC under a key made at start: the server knows its own
/// nonces without keeping them, and a nonce past its expiry is stale (438), so a captured request cannot
/// be replayed for long.
struct TURNNonces: Sendable {
    private let key = SymmetricKey(size: .bits256)
    let lifetime: TimeInterval

    init(lifetime: TimeInterval = 600) {
        self.lifetime = lifetime
    }

    func make(now: Date = Date()) -> String {
        let expiry = String(Int(now.timeIntervalSince1970 + lifetime), radix: 16)
        return expiry + "-" + mac(expiry)
    }

    /// Whether `nonce` is one of this server's and still fresh.
    func isFresh(_ nonce: String, now: Date = Date()) -> Bool {
        let parts = nonce.split(separator: "-")
        guard parts.count == 2, let expiry = Int(parts[0], radix: 16), mac(String(parts[0])) == parts[1] else {
            return false
        }
        return Double(expiry) > now.timeIntervalSince1970
    }

    private func mac(_ text: String) -> String {
        HMAC<SHA256>.authenticationCode(for: Array(text.utf8), using: key).prefix(12)
            .map { String(format: "%02x", $0) }.joined()
    }
}
