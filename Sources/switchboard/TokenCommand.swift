import ArgumentParser
import Foundation
import Switchboard
import SwitchboardAPI
import SwitchboardEngine

/// `switchboard token`: mints a development token from the configured HS256 secret.
struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Mint a development JWT from the server's HS256 secret.",
        discussion: "Patterns match topic, queue and room names, with * for any run of characters: 'chat.*'."
    )

    @Option(help: "The HS256 secret (SWITCHBOARD_JWT_SECRET).")
    var secret: String? = ProcessInfo.processInfo.environment["SWITCHBOARD_JWT_SECRET"]
    @Option(help: "The subject (sub).") var sub = "developer"
    @Option(help: "A topic pattern it may publish to; repeatable.") var publish: [String] = []
    @Option(help: "A topic pattern it may subscribe to; repeatable.") var subscribe: [String] = []
    @Option(help: "A queue pattern it may use; repeatable.") var queue: [String] = []
    @Option(help: "A signaling room pattern it may join; repeatable.") var room: [String] = []
    @Flag(help: "Allow everything.") var admin = false
    @Option(help: "Lifetime, such as 1h, 30m or 90s.") var ttl = "1h"
    @Option(help: "The iss claim.") var issuer: String?
    @Option(help: "The aud claim.") var audience: String?

    func run() async throws {
        guard let secret, secret.utf8.count >= 32 else {
            throw ValidationError(
                "Give the server's --jwt-secret (32 bytes or more) as --secret or SWITCHBOARD_JWT_SECRET"
            )
        }
        guard let lifetime = SettingValue.duration(ttl), lifetime > .zero else {
            throw ValidationError("--ttl must be a duration such as 1h, 30m or 90s")
        }
        print(
            try await Authentication.mint(
                secret: secret,
                subject: sub,
                publish: publish,
                subscribe: subscribe,
                queues: queue,
                rooms: room,
                admin: admin,
                ttl: .nanoseconds(lifetime.nanoseconds),
                issuer: issuer,
                audience: audience
            )
        )
    }
}
