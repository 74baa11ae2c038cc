import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import SwitchboardEdge
import SwitchboardEngine

/// `switchboard edge --config edge.yaml`: the proxy and load balancer in front of services.
struct EdgeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edge",
        abstract: "Run the edge: reverse proxy, L7 and L4 load balancer, forward proxy.",
        discussion: """
            The YAML (or JSON) file names listeners (http, tcp, forward), their routes and the clusters of \
            upstreams; see examples/ in the repository. SIGHUP reloads it; SIGTERM or Ctrl-C stops gracefully.
            """
    )

    @Option(help: "The edge configuration, YAML or JSON.") var config: String
    @Option(help: "trace, debug, info, notice, warning, error or critical (default info).") var logLevel = "info"
    @Option(help: "One log line per proxied request, on or off (default on).") var accessLog = "on"

    func run() async throws {
        guard let level = Logger.Level(rawValue: logLevel.lowercased()) else {
            throw ValidationError("--log-level: expected trace, debug, info, notice, warning, error or critical")
        }
        LoggingSystem.bootstrap { label in BufferedLogHandler(label: label, level: level) }
        defer { LogOutput.standardError.flush() }
        let logger = Logger(label: "switchboard-edge")
        let node: EdgeNode
        do {
            node = try EdgeNode(
                configurationPath: config,
                logger: logger,
                accessLog: accessLog == "off" ? nil : AccessLog(label: logger.label),
                onListening: { listener, address in
                    logger.info(
                        "Edge listening",
                        metadata: ["listener": "\(listener)", "address": "\(address.hostAndPort)"]
                    )
                }
            )
        } catch let error as EdgeConfigurationError {
            for problem in error.problems {
                FileHandle.standardError.write(Data("switchboard edge: \(problem)\n".utf8))
            }
            throw ExitCode(2)
        }
        let group = ServiceGroup(
            configuration: .init(services: [node], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        )
        try await group.run()
        logger.info("Stopped")
    }
}
