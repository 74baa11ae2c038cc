import Configuration
import Foundation
import Logging
import NIOCore
import NIOSSL
import SwitchboardAPI
import SwitchboardBroker
import SwitchboardEngine
import SwitchboardGRPC
import SwitchboardJobs
import SwitchboardRTC
import SwitchboardSQLite
import SwitchboardStore
import SwitchboardUploads

/// The resolved settings of a `serve` node.
public struct ServeSettings: Sendable {
    public var engine = EngineConfiguration()
    /// Directory of the embedded store.
    public var dataDirectory = "./switchboard-data"
    /// Where durable state lives.
    public var store = StoreLocation.sqlite
    /// Directory of upload bytes; `nil` is `uploads` under the data directory.
    public var uploadsDirectory: String?
    public var workerThreads = System.coreCount
    public var logLevel: Logger.Level = .info
    public var accessLog = true
    public var durability = SQLiteStore.Durability.process
    public var topics = TopicsAPI.Configuration()
    /// The queues the built-in workers serve, with their concurrency.
    public var jobQueues = ["default": 4]
    public var jobs = Jobs.Configuration()
    public var idempotency = Idempotency.Configuration()
    public var uploads = Uploads.Configuration()
    public var authentication = Authentication.Configuration()
    /// The gRPC listener; `nil` when off.
    public var grpc: GRPCListener.Configuration? = GRPCListener.Configuration()
    /// The STUN/TURN server; `nil` when off.
    public var stun: STUNListener.Configuration? = STUNListener.Configuration()
    /// Signaling rooms and the ICE servers handed to pages.
    public var rtc = RTCAPI.Configuration()
    public var broker: Broker.Configuration = {
        var configuration = Broker.Configuration()
        configuration.retention = RetentionPolicy(maxMessages: 1_000_000, maxAgeSeconds: 7 * 24 * 3600)
        return configuration
    }()

    public init() {}

    /// Where the upload bytes are.
    public var resolvedUploadsDirectory: String {
        uploadsDirectory ?? (dataDirectory as NSString).appendingPathComponent("uploads")
    }
}

/// The store a node uses.
public enum StoreLocation: Sendable, Equatable {
    /// SQLite in the data directory: the embedded default, for one node.
    case sqlite
    /// PostgreSQL at a `postgres://` URL, shared by every node that names it.
    case postgres(url: String)

    init?(_ text: String) {
        if text == "sqlite" {
            self = .sqlite
        } else if text.hasPrefix("postgres://") || text.hasPrefix("postgresql://") {
            self = .postgres(url: text)
        } else {
            return nil
        }
    }
}

extension ServeSettings {
    /// Resolves every setting from, in order of precedence, `commandLine` (values of the flags given),
    /// `environment` (`SWITCHBOARD_…` variables) and the YAML or JSON file named by `--config` or
    /// `SWITCHBOARD_CONFIG`; what none of them sets keeps its default.
    /// - Throws: `SettingsError` naming the first setting that is unusable.
    public static func resolve(
        commandLine: [ServeSetting: String] = [:],
        configFile: String? = nil,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) async throws -> ServeSettings {
        var values: [AbsoluteConfigKey: ConfigValue] = [:]
        for (setting, value) in commandLine {
            let content: ConfigContent =
                setting.isList ? .stringArray(value.split(separator: ",").map(String.init)) : .string(value)
            values[AbsoluteConfigKey([setting.rawValue])] = ConfigValue(content, isSecret: false)
        }
        var providers: [any ConfigProvider] = [
            InMemoryProvider(name: "flags", values: values),
            EnvironmentVariablesProvider(environmentVariables: environment).prefixKeys(with: "switchboard"),
        ]
        if let path = configFile ?? environment["SWITCHBOARD_CONFIG"] {
            providers.append(try await configFileProvider(path))
        }
        return try SettingsReader(config: ConfigReader(providers: providers)).serveSettings()
    }

    private static func configFileProvider(_ path: String) async throws -> any ConfigProvider {
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw SettingsError(key: "config", problem: "cannot read the file \(path)")
        }
        do {
            if path.hasSuffix(".json") {
                return try await FileProvider<JSONSnapshot>(filePath: .init(path))
            }
            return try await FileProvider<YAMLSnapshot>(filePath: .init(path))
        } catch {
            throw SettingsError(key: "config", problem: "\(path) is not valid YAML or JSON: \(error)")
        }
    }
}

/// Reads each setting as text and parses it, so that every mistake is reported with its setting.
private struct SettingsReader {
    let config: ConfigReader

    func serveSettings() throws -> ServeSettings {
        var settings = ServeSettings()
        var engine = EngineConfiguration()
        if let (host, port) = try read(.listen, expecting: "HOST:PORT", SettingValue.hostAndPort) {
            engine.host = host
            engine.port = port
        }
        settings.dataDirectory =
            try read(.data, expecting: "a directory") { $0.isEmpty ? nil : $0 }
            ?? settings.dataDirectory
        settings.store =
            try read(.store, expecting: "sqlite or a postgres:// URL", StoreLocation.init) ?? settings.store
        settings.uploadsDirectory = try read(.uploadsDir, expecting: "a directory") { $0.isEmpty ? nil : $0 }
        engine.executionModel =
            try read(.executionModel, expecting: "single, shared-listener or reuseport") {
                ExecutionModel(rawValue: $0)
            } ?? engine.executionModel
        engine.eventLoops =
            try read(.eventLoops, expecting: "a count from 1 to 256", count(1...256)) ?? engine.eventLoops
        engine.backlog = try read(.backlog, expecting: "a count from 1 to 65535", count(1...65535)) ?? engine.backlog
        engine.tcpNoDelay = try read(.tcpNoDelay, expecting: "on or off", SettingValue.bool) ?? engine.tcpNoDelay
        let fastOpen = try read(.tcpFastOpen, expecting: "a queue length from 0 to 65535", count(0...65535))
        engine.tcpFastOpenQueue = fastOpen.flatMap { $0 == 0 ? nil : $0 } ?? engine.tcpFastOpenQueue
        var limits = engine.limits
        limits.maxHeaderBytes =
            try read(.maxHeaderBytes, expecting: "a size from 1KiB to 80KiB") {
                SettingValue.byteSize($0).flatMap { (1024...80 * 1024).contains($0) ? $0 : nil }
            } ?? limits.maxHeaderBytes
        limits.maxBodyBytes =
            try read(.maxBodyBytes, expecting: "a size such as 1MiB", SettingValue.byteSize)
            ?? limits.maxBodyBytes
        limits.headerReadTimeout =
            try read(.headerReadTimeout, expecting: "a duration such as 10s", positiveDuration)
            ?? limits.headerReadTimeout
        limits.idleTimeout =
            try read(.idleTimeout, expecting: "a duration such as 60s", positiveDuration)
            ?? limits.idleTimeout
        limits.maxConnections =
            try read(.maxConnections, expecting: "a count of at least 1", count(1...Int(Int32.max)))
            ?? limits.maxConnections
        engine.limits = limits
        engine.drainTimeout =
            try read(.drainTimeout, expecting: "a duration such as 10s", SettingValue.duration)
            ?? engine.drainTimeout
        if let origins = try read(.corsOrigins, expecting: "origins such as http://localhost:3000, or *", corsOrigins) {
            engine.crossOrigin = CrossOriginPolicy(allowedOrigins: origins)
        }
        let certificateFiles = try tlsFiles(dataDirectory: settings.dataDirectory)
        engine.tls = try certificateFiles.map { try tlsListener(files: $0) }
        engine.http2 = try http2()
        let grpc = try read(.grpcListen, expecting: "HOST:PORT or off") { text -> GRPCListener.Configuration?? in
            guard text != "off" else { return .some(nil) }
            return SettingValue.hostAndPort(text).map { GRPCListener.Configuration(host: $0.host, port: $0.port) }
        }
        if let grpc {
            settings.grpc = grpc
        }
        if var grpc = settings.grpc {
            grpc.keepalive =
                try read(.grpcKeepalive, expecting: "a duration such as 2h", positiveDuration).map {
                    .nanoseconds($0.nanoseconds)
                } ?? grpc.keepalive
            grpc.interop = try read(.grpcInterop, expecting: "on or off", SettingValue.bool) ?? grpc.interop
            if let files = certificateFiles {
                let (host, port) =
                    try read(.grpcTLSListen, expecting: "HOST:PORT", SettingValue.hostAndPort) ?? ("127.0.0.1", 50052)
                grpc.tls = .init(host: host, port: port, certificateFile: files.certificate, keyFile: files.key)
            }
            settings.grpc = grpc
        }
        let stun = try read(.stunListen, expecting: "HOST:PORT or off") { text -> STUNListener.Configuration?? in
            guard text != "off" else { return .some(nil) }
            return SettingValue.hostAndPort(text).map { STUNListener.Configuration(host: $0.host, port: $0.port) }
        }
        if let stun {
            settings.stun = stun
        }
        if var stun = settings.stun {
            stun.turn = try turn()
            let tls = try read(.turnTLSListen, expecting: "HOST:PORT or off") { text -> (String, Int)?? in
                text == "off" ? .some(nil) : SettingValue.hostAndPort(text).map { .some(($0.host, $0.port)) }
            }
            if let certificate = engine.tls, let (host, port) = tls ?? ("127.0.0.1", 5349) {
                stun.tls = TLSListener(
                    host: host,
                    port: port,
                    certificateChain: certificate.certificateChain,
                    privateKey: certificate.privateKey
                )
            }
            settings.stun = stun
        }
        settings.rtc.turnCredentialLifetime =
            try read(.turnCredentialTTL, expecting: "a duration such as 1h", positiveDuration).map {
                Int($0.nanoseconds / 1_000_000_000)
            } ?? settings.rtc.turnCredentialLifetime
        settings.rtc.maxPeersPerRoom =
            try read(.rtcMaxPeers, expecting: "a count from 2 to 10000", count(2...10_000))
            ?? settings.rtc.maxPeersPerRoom
        settings.engine = engine
        settings.workerThreads =
            try read(.workerThreads, expecting: "a count from 1 to 256", count(1...256))
            ?? settings.workerThreads
        settings.logLevel =
            try read(.logLevel, expecting: "trace, debug, info, notice, warning, error or critical") {
                Logger.Level(rawValue: $0.lowercased())
            } ?? settings.logLevel
        settings.accessLog = try read(.accessLog, expecting: "on or off", SettingValue.bool) ?? settings.accessLog
        settings.durability =
            try read(.durability, expecting: "process or power") { SQLiteStore.Durability(rawValue: $0) }
            ?? settings.durability
        settings.topics.maxMessageBytes =
            try read(.maxMessageBytes, expecting: "a size such as 1MiB") {
                SettingValue.byteSize($0).flatMap { $0 > 0 ? $0 : nil }
            } ?? settings.topics.maxMessageBytes
        settings.topics.sseHeartbeat =
            try read(.sseHeartbeat, expecting: "a duration such as 15s", positiveDuration).map {
                Duration.nanoseconds($0.nanoseconds)
            } ?? settings.topics.sseHeartbeat
        var retention = settings.broker.retention
        if let count = try read(.retentionMessages, expecting: "a count, 0 for no limit", count(0...Int(Int64.max))) {
            retention.maxMessages = count == 0 ? nil : Int64(count)
        }
        if let age = try read(
            .retentionAge,
            expecting: "a duration such as 168h, 0 for no limit",
            SettingValue.duration
        ) {
            retention.maxAgeSeconds = age == .zero ? nil : max(1, age.nanoseconds / 1_000_000_000)
        }
        settings.broker.retention = retention
        settings.broker.topicRetention = try topicRetention(defaults: retention)
        settings.jobQueues = try jobQueues() ?? settings.jobQueues
        settings.jobs.defaultLease =
            try read(.jobLease, expecting: "a duration such as 30s", positiveDuration).map {
                Duration.nanoseconds($0.nanoseconds)
            } ?? settings.jobs.defaultLease
        settings.jobs.retention =
            try read(.jobRetention, expecting: "a duration such as 168h", positiveDuration).map {
                Duration.nanoseconds($0.nanoseconds)
            } ?? settings.jobs.retention
        settings.idempotency.retention =
            try read(.idempotencyRetention, expecting: "a duration of at least 24h such as 48h") {
                SettingValue.duration($0).flatMap { $0 >= .hours(24) ? $0 : nil }
            }.map { Duration.nanoseconds($0.nanoseconds) } ?? settings.idempotency.retention
        settings.authentication = try authentication()
        settings.uploads.maxSize =
            try read(.uploadMaxSize, expecting: "a size such as 10GiB") {
                SettingValue.byteSize($0).flatMap { $0 > 0 ? Int64($0) : nil }
            } ?? settings.uploads.maxSize
        settings.uploads.expiry =
            try read(.uploadExpiry, expecting: "a duration such as 24h", positiveDuration).map {
                Duration.nanoseconds($0.nanoseconds)
            } ?? settings.uploads.expiry
        return settings
    }

    /// The parsed value of `setting`, `nil` when no source sets it.
    private func read<Value>(
        _ setting: ServeSetting,
        expecting expected: String,
        _ parse: (String) -> Value?
    ) throws -> Value? {
        guard let text = config.string(forKey: ConfigKey([setting.rawValue])) else { return nil }
        guard let value = parse(text) else {
            throw SettingsError(key: setting.rawValue, problem: "expected \(expected), got '\(text)'")
        }
        return value
    }

    private func count(_ range: ClosedRange<Int>) -> (String) -> Int? {
        { Int($0).flatMap { range.contains($0) ? $0 : nil } }
    }

    /// `TOPIC=MESSAGES/AGE` entries; an empty part keeps the default's, 0 means no limit.
    private func topicRetention(defaults: RetentionPolicy) throws -> [String: RetentionPolicy] {
        let key = ServeSetting.topicRetention.rawValue
        var policies: [String: RetentionPolicy] = [:]
        for entry in config.stringArray(forKey: ConfigKey([key])) ?? [] {
            guard let policy = retentionPolicy(entry, defaults: defaults) else {
                throw SettingsError(
                    key: key,
                    problem: "expected TOPIC=MESSAGES/AGE such as audit=0/720h, got '\(entry)'"
                )
            }
            policies[policy.topic] = policy.policy
        }
        return policies
    }

    private func retentionPolicy(
        _ entry: String,
        defaults: RetentionPolicy
    ) -> (topic: String, policy: RetentionPolicy)? {
        let parts = entry.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
        guard parts.count == 2, TopicName.isValid(parts[0]) else { return nil }
        let limits = parts[1].split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        var policy = defaults
        if let count = limits.first, !count.isEmpty {
            guard let value = Int64(count), value >= 0 else { return nil }
            policy.maxMessages = value == 0 ? nil : value
        }
        if limits.count > 1, !limits[1].isEmpty {
            guard let age = SettingValue.duration(String(limits[1])) else { return nil }
            policy.maxAgeSeconds = age == .zero ? nil : max(1, age.nanoseconds / 1_000_000_000)
        }
        return (String(parts[0]), policy)
    }

    /// The PEM files of the certificate and its key, when given or a development one is asked for.
    private func tlsFiles(dataDirectory: String) throws -> (certificate: String, key: String)? {
        var files: (certificate: String, key: String)?
        if let certificate = try read(.tlsCert, expecting: "a PEM file", { $0 }) {
            guard let key = try read(.tlsKey, expecting: "a PEM file", { $0 }) else {
                throw SettingsError(key: ServeSetting.tlsKey.rawValue, problem: "is needed with tls-cert")
            }
            files = (certificate, key)
        } else if try read(.tlsSelfSigned, expecting: "on or off", SettingValue.bool) == true {
            do {
                files = try DevelopmentCertificate.files(in: dataDirectory)
            } catch {
                throw SettingsError(
                    key: ServeSetting.tlsSelfSigned.rawValue,
                    problem: "cannot make a certificate: \(error)"
                )
            }
        }
        return files
    }

    /// The TLS listener of a certificate's files.
    private func tlsListener(files: (certificate: String, key: String)) throws -> TLSListener {
        let (host, port) = try read(.tlsListen, expecting: "HOST:PORT", SettingValue.hostAndPort) ?? ("127.0.0.1", 8443)
        do {
            return TLSListener(
                host: host,
                port: port,
                certificateChain: try NIOSSLCertificate.fromPEMFile(files.certificate),
                privateKey: try NIOSSLPrivateKey(file: files.key, format: .pem)
            )
        } catch {
            throw SettingsError(
                key: ServeSetting.tlsCert.rawValue,
                problem: "cannot read \(files.certificate) and \(files.key): \(error)"
            )
        }
    }

    private func http2() throws -> HTTP2Configuration {
        var http2 = HTTP2Configuration()
        http2.cleartext = try read(.h2c, expecting: "on or off", SettingValue.bool) ?? http2.cleartext
        http2.maxConcurrentStreams =
            try read(.http2MaxStreams, expecting: "a count from 1 to 10000", count(1...10_000))
            ?? http2.maxConcurrentStreams
        // RFC 9113 §6.5.2: windows run up to 2^31-1 bytes.
        let window = { (text: String) in
            SettingValue.byteSize(text).flatMap { (65535...Int(Int32.max)).contains($0) ? $0 : nil }
        }
        http2.streamWindowSize =
            try read(.http2StreamWindow, expecting: "a size from 65535 to 2147483647 bytes", window)
            ?? http2.streamWindowSize
        http2.connectionWindowSize =
            try read(.http2ConnectionWindow, expecting: "a size from 65535 to 2147483647 bytes", window)
            ?? http2.connectionWindowSize
        http2.headerTableSize =
            try read(.http2HeaderTable, expecting: "a size from 0 to 64KiB") {
                SettingValue.byteSize($0).flatMap { (0...65536).contains($0) ? $0 : nil }
            } ?? http2.headerTableSize
        http2.maxResets =
            try read(.http2MaxResets, expecting: "a count of at least 1", count(1...1_000_000)) ?? http2.maxResets
        return http2
    }

    /// TURN's credentials, relay addresses, peers and quotas; the users file is read here.
    private func turn() throws -> TURNConfiguration {
        var turn = TURNConfiguration()
        turn.credentials.secret = try read(.turnSecret, expecting: "a secret") { $0.isEmpty ? nil : $0 }
        if let path = try read(.turnUsers, expecting: "a readable file", { $0 }) {
            guard let contents = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw SettingsError(key: ServeSetting.turnUsers.rawValue, problem: "cannot read \(path)")
            }
            do {
                turn.credentials.users = try TURNCredentials.users(fromFile: contents)
            } catch {
                throw SettingsError(
                    key: ServeSetting.turnUsers.rawValue,
                    problem: "\(path):\(error.line): expected USER:PASSWORD"
                )
            }
        }
        turn.credentials.realm = try read(.turnRealm, expecting: "a realm") { $0.isEmpty ? nil : $0 } ?? "switchboard"
        turn.relayHost = try read(.turnRelayAddress, expecting: "an IP address") {
            (try? SocketAddress(ipAddress: $0, port: 0)) == nil ? nil : $0
        }
        turn.relayPorts =
            try read(.turnRelayPorts, expecting: "LOW-HIGH ports such as 49160-49300") { text in
                let bounds = text.split(separator: "-").compactMap { Int($0) }
                guard bounds.count == 2, 1 <= bounds[0], bounds[0] <= bounds[1], bounds[1] <= 65535 else { return nil }
                return bounds[0]...bounds[1]
            } ?? turn.relayPorts
        let key = ServeSetting.turnAllowedPeers.rawValue
        for network in config.stringArray(forKey: ConfigKey([key])) ?? [] where !network.isEmpty {
            guard let parsed = IPNetwork(network.trimmingCharacters(in: .whitespaces)) else {
                throw SettingsError(key: key, problem: "expected networks such as 127.0.0.0/8, got '\(network)'")
            }
            turn.allowedPeers.append(parsed)
        }
        turn.maxAllocations =
            try read(.turnMaxAllocations, expecting: "a count of at least 1", count(1...1_000_000))
            ?? turn.maxAllocations
        turn.maxAllocationsPerUser =
            try read(.turnUserQuota, expecting: "a count of at least 1", count(1...1_000_000))
            ?? turn.maxAllocationsPerUser
        if let bandwidth = try read(.turnMaxBandwidth, expecting: "a rate such as 1MiB", SettingValue.byteSize) {
            turn.maxBytesPerSecond = bandwidth == 0 ? nil : bandwidth
        }
        return turn
    }

    /// The JWT keys and the claims every token must carry; key files are read here.
    private func authentication() throws -> Authentication.Configuration {
        var configuration = Authentication.Configuration()
        configuration.secret = try read(.jwtSecret, expecting: "a secret of at least 32 bytes") {
            $0.utf8.count >= 32 ? $0 : nil
        }
        configuration.publicKeyPEM = try read(.jwtPublicKey, expecting: "a readable PEM file") {
            try? String(contentsOfFile: $0, encoding: .utf8)
        }
        configuration.jwks = try read(.jwks, expecting: "a readable JWKS file") {
            try? String(contentsOfFile: $0, encoding: .utf8)
        }
        configuration.issuer = try read(.jwtIssuer, expecting: "an issuer") { $0.isEmpty ? nil : $0 }
        configuration.audience = try read(.jwtAudience, expecting: "an audience") { $0.isEmpty ? nil : $0 }
        return configuration
    }

    /// `QUEUE=CONCURRENCY` entries (a bare `QUEUE` runs 4 at once); `nil` when not set.
    private func jobQueues() throws -> [String: Int]? {
        let key = ServeSetting.jobQueues.rawValue
        guard let entries = config.stringArray(forKey: ConfigKey([key])) else { return nil }
        var queues: [String: Int] = [:]
        for entry in entries where !entry.isEmpty {
            let parts = entry.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
            guard TopicName.isValid(parts[0]), let concurrency = parts.count > 1 ? Int(parts[1]) : 4,
                (1...256).contains(concurrency)
            else {
                throw SettingsError(key: key, problem: "expected QUEUE=CONCURRENCY such as default=4, got '\(entry)'")
            }
            queues[String(parts[0])] = concurrency
        }
        return queues
    }

    private func corsOrigins(_ text: String) -> Set<String>? {
        let origins = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let valid = origins.allSatisfy { $0 == "*" || $0.hasPrefix("http://") || $0.hasPrefix("https://") }
        return valid && !origins.isEmpty ? Set(origins) : nil
    }

    private func positiveDuration(_ text: String) -> TimeAmount? {
        SettingValue.duration(text).flatMap { $0 > .zero ? $0 : nil }
    }
}
