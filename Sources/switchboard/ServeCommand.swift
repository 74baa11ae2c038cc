import ArgumentParser
import Foundation
import Logging
import Switchboard
import SwitchboardEngine

/// `switchboard serve`: runs a node until SIGTERM or Ctrl-C.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Start the server.",
        discussion: """
            Settings come from flags, then SWITCHBOARD_* environment variables (SWITCHBOARD_LISTEN, \
            SWITCHBOARD_MAX_BODY_BYTES, ...), then the config file (YAML or JSON, same key names).
            """
    )

    @Option(help: "YAML or JSON config file (SWITCHBOARD_CONFIG).") var config: String?
    @Option(help: .init(ServeSetting.listen.help)) var listen: String?
    @Option(help: .init(ServeSetting.data.help)) var data: String?
    @Option(help: .init(ServeSetting.store.help)) var store: String?
    @Option(help: .init(ServeSetting.uploadsDir.help)) var uploadsDir: String?
    @Option(help: .init(ServeSetting.executionModel.help)) var executionModel: String?
    @Option(help: .init(ServeSetting.eventLoops.help)) var eventLoops: String?
    @Option(help: .init(ServeSetting.backlog.help)) var backlog: String?
    @Option(name: .customLong("tcp-nodelay"), help: .init(ServeSetting.tcpNoDelay.help)) var tcpNoDelay: String?
    @Option(help: .init(ServeSetting.tcpFastOpen.help)) var tcpFastOpen: String?
    @Option(help: .init(ServeSetting.maxHeaderBytes.help)) var maxHeaderBytes: String?
    @Option(help: .init(ServeSetting.maxBodyBytes.help)) var maxBodyBytes: String?
    @Option(help: .init(ServeSetting.headerReadTimeout.help)) var headerReadTimeout: String?
    @Option(help: .init(ServeSetting.idleTimeout.help)) var idleTimeout: String?
    @Option(help: .init(ServeSetting.maxConnections.help)) var maxConnections: String?
    @Option(help: .init(ServeSetting.drainTimeout.help)) var drainTimeout: String?
    @Option(help: .init(ServeSetting.workerThreads.help)) var workerThreads: String?
    @Option(help: .init(ServeSetting.logLevel.help)) var logLevel: String?
    @Option(help: .init(ServeSetting.accessLog.help)) var accessLog: String?
    @Option(help: .init(ServeSetting.durability.help)) var durability: String?
    @Option(help: .init(ServeSetting.maxMessageBytes.help)) var maxMessageBytes: String?
    @Option(help: .init(ServeSetting.retentionMessages.help)) var retentionMessages: String?
    @Option(help: .init(ServeSetting.retentionAge.help)) var retentionAge: String?
    @Option(help: .init(ServeSetting.sseHeartbeat.help)) var sseHeartbeat: String?
    @Option(help: .init(ServeSetting.corsOrigins.help)) var corsOrigins: String?
    @Option(help: .init(ServeSetting.tlsListen.help)) var tlsListen: String?
    @Option(help: .init(ServeSetting.tlsCert.help)) var tlsCert: String?
    @Option(help: .init(ServeSetting.tlsKey.help)) var tlsKey: String?
    @Flag(help: .init(ServeSetting.tlsSelfSigned.help)) var tlsSelfSigned = false
    @Option(help: .init(ServeSetting.h2c.help)) var h2c: String?
    @Option(name: .customLong("grpc-listen"), help: .init(ServeSetting.grpcListen.help)) var grpcListen: String?
    @Option(name: .customLong("grpc-tls-listen"), help: .init(ServeSetting.grpcTLSListen.help))
    var grpcTLSListen: String?
    @Option(help: .init(ServeSetting.grpcKeepalive.help)) var grpcKeepalive: String?
    @Option(help: .init(ServeSetting.grpcInterop.help)) var grpcInterop: String?
    @Option(help: .init(ServeSetting.stunListen.help)) var stunListen: String?
    @Option(name: .customLong("turn-tls-listen"), help: .init(ServeSetting.turnTLSListen.help))
    var turnTLSListen: String?
    @Option(help: .init(ServeSetting.turnSecret.help)) var turnSecret: String?
    @Option(help: .init(ServeSetting.turnUsers.help)) var turnUsers: String?
    @Option(help: .init(ServeSetting.turnRealm.help)) var turnRealm: String?
    @Option(help: .init(ServeSetting.turnRelayAddress.help)) var turnRelayAddress: String?
    @Option(help: .init(ServeSetting.turnRelayPorts.help)) var turnRelayPorts: String?
    @Option(help: .init(ServeSetting.turnAllowedPeers.help)) var turnAllowedPeers: String?
    @Option(help: .init(ServeSetting.turnMaxAllocations.help)) var turnMaxAllocations: String?
    @Option(help: .init(ServeSetting.turnUserQuota.help)) var turnUserQuota: String?
    @Option(help: .init(ServeSetting.turnMaxBandwidth.help)) var turnMaxBandwidth: String?
    @Option(name: .customLong("turn-credential-ttl"), help: .init(ServeSetting.turnCredentialTTL.help))
    var turnCredentialTTL: String?
    @Option(help: .init(ServeSetting.rtcMaxPeers.help)) var rtcMaxPeers: String?
    @Option(name: .customLong("http2-max-streams"), help: .init(ServeSetting.http2MaxStreams.help))
    var http2MaxStreams: String?
    @Option(name: .customLong("http2-stream-window"), help: .init(ServeSetting.http2StreamWindow.help))
    var http2StreamWindow: String?
    @Option(name: .customLong("http2-connection-window"), help: .init(ServeSetting.http2ConnectionWindow.help))
    var http2ConnectionWindow: String?
    @Option(name: .customLong("http2-header-table"), help: .init(ServeSetting.http2HeaderTable.help))
    var http2HeaderTable: String?
    @Option(name: .customLong("http2-max-resets"), help: .init(ServeSetting.http2MaxResets.help))
    var http2MaxResets: String?
    @Option(help: .init(ServeSetting.topicRetention.help)) var topicRetention: String?
    @Option(help: .init(ServeSetting.jobQueues.help)) var jobQueues: String?
    @Option(help: .init(ServeSetting.jobLease.help)) var jobLease: String?
    @Option(help: .init(ServeSetting.jobRetention.help)) var jobRetention: String?
    @Option(help: .init(ServeSetting.idempotencyRetention.help)) var idempotencyRetention: String?
    @Option(help: .init(ServeSetting.uploadMaxSize.help)) var uploadMaxSize: String?
    @Option(help: .init(ServeSetting.uploadExpiry.help)) var uploadExpiry: String?
    @Option(help: .init(ServeSetting.jwtSecret.help)) var jwtSecret: String?
    @Option(help: .init(ServeSetting.jwtPublicKey.help)) var jwtPublicKey: String?
    @Option(help: .init(ServeSetting.jwks.help)) var jwks: String?
    @Option(help: .init(ServeSetting.jwtIssuer.help)) var jwtIssuer: String?
    @Option(help: .init(ServeSetting.jwtAudience.help)) var jwtAudience: String?

    /// The flags the user gave, by setting.
    private var commandLine: [ServeSetting: String] {
        let given: [(ServeSetting, String?)] = [
            (.listen, listen), (.data, data), (.store, store), (.uploadsDir, uploadsDir),
            (.executionModel, executionModel), (.eventLoops, eventLoops),
            (.backlog, backlog), (.tcpNoDelay, tcpNoDelay), (.tcpFastOpen, tcpFastOpen),
            (.maxHeaderBytes, maxHeaderBytes), (.maxBodyBytes, maxBodyBytes),
            (.headerReadTimeout, headerReadTimeout), (.idleTimeout, idleTimeout),
            (.maxConnections, maxConnections), (.drainTimeout, drainTimeout), (.workerThreads, workerThreads),
            (.logLevel, logLevel), (.accessLog, accessLog), (.durability, durability),
            (.maxMessageBytes, maxMessageBytes), (.retentionMessages, retentionMessages),
            (.retentionAge, retentionAge), (.sseHeartbeat, sseHeartbeat), (.corsOrigins, corsOrigins),
            (.tlsListen, tlsListen), (.tlsCert, tlsCert), (.tlsKey, tlsKey),
            (.tlsSelfSigned, tlsSelfSigned ? "on" : nil), (.h2c, h2c), (.grpcListen, grpcListen),
            (.grpcTLSListen, grpcTLSListen), (.grpcKeepalive, grpcKeepalive), (.grpcInterop, grpcInterop),
            (.stunListen, stunListen), (.turnTLSListen, turnTLSListen), (.turnSecret, turnSecret),
            (.turnUsers, turnUsers), (.turnRealm, turnRealm),
            (.turnRelayAddress, turnRelayAddress), (.turnRelayPorts, turnRelayPorts),
            (.turnAllowedPeers, turnAllowedPeers), (.turnMaxAllocations, turnMaxAllocations),
            (.turnUserQuota, turnUserQuota), (.turnMaxBandwidth, turnMaxBandwidth),
            (.turnCredentialTTL, turnCredentialTTL), (.rtcMaxPeers, rtcMaxPeers),
            (.http2MaxStreams, http2MaxStreams),
            (.http2StreamWindow, http2StreamWindow), (.http2ConnectionWindow, http2ConnectionWindow),
            (.http2HeaderTable, http2HeaderTable), (.http2MaxResets, http2MaxResets),
            (.topicRetention, topicRetention), (.jobQueues, jobQueues), (.jobLease, jobLease),
            (.jobRetention, jobRetention),
            (.idempotencyRetention, idempotencyRetention), (.uploadMaxSize, uploadMaxSize),
            (.uploadExpiry, uploadExpiry), (.jwtSecret, jwtSecret), (.jwtPublicKey, jwtPublicKey), (.jwks, jwks),
            (.jwtIssuer, jwtIssuer), (.jwtAudience, jwtAudience),
        ]
        return Dictionary(uniqueKeysWithValues: given.compactMap { setting, value in value.map { (setting, $0) } })
    }

    func run() async throws {
        let settings: ServeSettings
        do {
            settings = try await ServeSettings.resolve(commandLine: commandLine, configFile: config)
        } catch let error as SettingsError {
            FileHandle.standardError.write(Data("switchboard: \(error)\n".utf8))
            throw ExitCode(2)
        }
        let level = settings.logLevel
        LoggingSystem.bootstrap { label in BufferedLogHandler(label: label, level: level) }
        defer { LogOutput.standardError.flush() }
        let logger = Logger(label: "switchboard")
        let node = try await ServeNode(settings: settings, logger: logger)
        try await node.run()
        logger.info("Stopped")
    }
}
