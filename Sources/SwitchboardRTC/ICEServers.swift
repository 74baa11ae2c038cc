import Foundation
import NIOConcurrencyHelpers

/// The STUN and TURN servers a web page should use (`RTCIceServer` entries), with TURN credentials in
/// the TURN REST API scheme that last `credentialLifetime` seconds. The STUN/TURN address is known once
/// its sockets are bound.
public final class ICEServers: Sendable {
    /// One `RTCIceServer`.
    public struct Entry: Sendable, Equatable {
        public var urls: [String]
        public var username: String?
        public var credential: String?
    }

    private let secret: String?
    public let credentialLifetime: Int
    private let address = NIOLockedValueBox<(host: String, port: Int, tlsPort: Int?)?>(nil)

    /// - Parameter turn: TURN's settings; only a REST secret lets credentials be handed out.
    public init(turn: TURNConfiguration?, credentialLifetime: Int) {
        secret = turn?.credentials.secret
        self.credentialLifetime = credentialLifetime
    }

    /// Called once the STUN/TURN sockets listen.
    public func listening(host: String, port: Int, tlsPort: Int?) {
        address.withLockedValue { $0 = (host, port, tlsPort) }
    }

    /// The servers for `user`; `hostname` stands in for a wildcard listen address (the name the page
    /// reached this server by). Empty while STUN is off.
    public func entries(for user: String, hostname: String?, now: Date = Date()) -> [Entry] {
        guard var (host, port, tlsPort) = address.withLockedValue({ $0 }) else { return [] }
        if host == "0.0.0.0" || host == "::", let hostname { host = hostname }
        let name = host.contains(":") ? "[\(host)]" : host
        let authority = "\(name):\(port)"
        var entries = [Entry(urls: ["stun:\(authority)"])]
        if let secret {
            let username = TURNCredentials.restUsername(user: user, validFor: credentialLifetime, now: now)
            entries.append(
                Entry(
                    urls: ["turn:\(authority)?transport=udp", "turn:\(authority)?transport=tcp"]
                        + (tlsPort.map { ["turns:\(name):\($0)?transport=tcp"] } ?? []),
                    username: username,
                    credential: TURNCredentials.restPassword(username: username, secret: secret)
                )
            )
        }
        return entries
    }
}
