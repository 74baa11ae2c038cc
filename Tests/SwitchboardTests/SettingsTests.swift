import Foundation
import SwitchboardEngine
import SwitchboardStore
import Testing

@testable import Switchboard

@Suite struct SettingsTests {
    @Test func defaultsMatchTheDocumentedOnes() async throws {
        let settings = try await ServeSettings.resolve(environment: [:])
        #expect(settings.engine.host == "127.0.0.1")
        #expect(settings.engine.port == 8080)
        #expect(settings.engine.executionModel == .sharedListener)
        #expect(settings.dataDirectory == "./switchboard-data")
        #expect(settings.engine.limits.maxBodyBytes == 1 << 20)
        #expect(settings.engine.tcpNoDelay)
    }

    @Test func flagsBeatEnvironmentWhichBeatsTheConfigFile() async throws {
        let file = try temporaryFile(
            named: "switchboard.yaml",
            contents: """
                listen: 127.0.0.1:7000
                max-body-bytes: 2MiB
                event-loops: 3
                idle-timeout: 5s
                execution-model: reuseport
                """
        )
        let settings = try await ServeSettings.resolve(
            commandLine: [.listen: "127.0.0.1:9000"],
            configFile: file,
            environment: ["SWITCHBOARD_LISTEN": "127.0.0.1:8000", "SWITCHBOARD_EVENT_LOOPS": "5"]
        )
        #expect(settings.engine.port == 9000)
        #expect(settings.engine.eventLoops == 5)
        #expect(settings.engine.limits.maxBodyBytes == 2 << 20)
        #expect(settings.engine.limits.idleTimeout == .seconds(5))
        #expect(settings.engine.executionModel == .reuseport)
    }

    @Test func http2SettingsAndTheirMistakes() async throws {
        let file = try temporaryFile(
            named: "http2.yaml",
            contents: """
                h2c: off
                http2-max-streams: 250
                http2-stream-window: 1MiB
                http2-header-table: 8KiB
                """
        )
        let settings = try await ServeSettings.resolve(
            commandLine: [.http2MaxResets: "30"],
            configFile: file,
            environment: ["SWITCHBOARD_HTTP2_CONNECTION_WINDOW": "4MiB"]
        )
        let http2 = settings.engine.http2
        #expect(!http2.cleartext)
        #expect(http2.maxConcurrentStreams == 250)
        #expect(http2.streamWindowSize == 1 << 20)
        #expect(http2.connectionWindowSize == 4 << 20)
        #expect(http2.headerTableSize == 8192)
        #expect(http2.maxResets == 30)
        await #expect(throws: SettingsError.self) {
            try await ServeSettings.resolve(commandLine: [.http2StreamWindow: "1KiB"], environment: [:])
        }
        await #expect(throws: SettingsError.self) {
            try await ServeSettings.resolve(commandLine: [.http2MaxStreams: "0"], environment: [:])
        }
    }

    @Test func grpcSettings() async throws {
        let defaults = try await ServeSettings.resolve(environment: [:])
        #expect(defaults.grpc?.port == 50051)
        #expect(defaults.grpc?.keepalive == .seconds(7200))
        #expect(defaults.grpc?.interop == false)
        #expect(defaults.grpc?.tls == nil)
        let data = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString).path
        let settings = try await ServeSettings.resolve(
            commandLine: [.grpcKeepalive: "30s", .tlsSelfSigned: "on", .data: data],
            environment: ["SWITCHBOARD_GRPC_INTEROP": "on", "SWITCHBOARD_GRPC_TLS_LISTEN": "127.0.0.1:7443"]
        )
        #expect(settings.grpc?.keepalive == .seconds(30))
        #expect(settings.grpc?.interop == true)
        #expect(settings.grpc?.tls?.port == 7443)
        #expect(settings.grpc?.tls?.certificateFile == data + "/tls/self-signed-cert.pem")
        #expect(try await ServeSettings.resolve(commandLine: [.grpcListen: "off"], environment: [:]).grpc == nil)
        await #expect(throws: SettingsError.self) {
            try await ServeSettings.resolve(commandLine: [.grpcKeepalive: "0s"], environment: [:])
        }
        await #expect(throws: SettingsError.self) {
            try await ServeSettings.resolve(commandLine: [.grpcInterop: "maybe"], environment: [:])
        }
    }

    @Test func configFileCanComeFromTheEnvironment() async throws {
        let file = try temporaryFile(named: "env.yaml", contents: "data: /tmp/from-file\n")
        let settings = try await ServeSettings.resolve(environment: ["SWITCHBOARD_CONFIG": file])
        #expect(settings.dataDirectory == "/tmp/from-file")
    }

    @Test(arguments: [
        (
            ServeSetting.listen, "nowhere",
            "invalid setting listen (--listen, SWITCHBOARD_LISTEN): expected HOST:PORT, got 'nowhere'"
        ),
        (
            .eventLoops, "0",
            "invalid setting event-loops (--event-loops, SWITCHBOARD_EVENT_LOOPS): expected a count from 1 to 256, got '0'"
        ),
        (
            .executionModel, "threads",
            "invalid setting execution-model (--execution-model, SWITCHBOARD_EXECUTION_MODEL): expected single, shared-listener or reuseport, got 'threads'"
        ),
        (
            .maxBodyBytes, "lots",
            "invalid setting max-body-bytes (--max-body-bytes, SWITCHBOARD_MAX_BODY_BYTES): expected a size such as 1MiB, got 'lots'"
        ),
        (
            .idleTimeout, "-1s",
            "invalid setting idle-timeout (--idle-timeout, SWITCHBOARD_IDLE_TIMEOUT): expected a duration such as 60s, got '-1s'"
        ),
    ])
    func badSettingIsNamedInOneLine(setting: ServeSetting, value: String, message: String) async throws {
        await #expect(throws: SettingsError.self) {
            _ = try await ServeSettings.resolve(commandLine: [setting: value], environment: [:])
        }
        do {
            _ = try await ServeSettings.resolve(commandLine: [setting: value], environment: [:])
        } catch let error as SettingsError {
            #expect(error.description == message)
        }
    }

    @Test func badEnvironmentValueIsReportedToo() async throws {
        await #expect(throws: SettingsError(key: "backlog", problem: "expected a count from 1 to 65535, got 'many'")) {
            _ = try await ServeSettings.resolve(environment: ["SWITCHBOARD_BACKLOG": "many"])
        }
    }

    @Test func missingOrBrokenConfigFileIsReported() async throws {
        await #expect(throws: SettingsError.self) {
            _ = try await ServeSettings.resolve(configFile: "/nonexistent/switchboard.yaml", environment: [:])
        }
        let broken = try temporaryFile(named: "broken.yaml", contents: "listen: [unclosed\n")
        await #expect(throws: SettingsError.self) {
            _ = try await ServeSettings.resolve(configFile: broken, environment: [:])
        }
    }

    @Test func topicRetentionComesFromFlagsEnvironmentOrAYAMLList() async throws {
        let fromFlag = try await ServeSettings.resolve(
            commandLine: [.topicRetention: "audit=0/720h,chat=1000/"],
            environment: [:]
        )
        #expect(fromFlag.broker.topicRetention["audit"] == RetentionPolicy(maxMessages: nil, maxAgeSeconds: 720 * 3600))
        #expect(fromFlag.broker.topicRetention["chat"] == RetentionPolicy(maxMessages: 1000, maxAgeSeconds: 168 * 3600))
        let fromEnvironment = try await ServeSettings.resolve(environment: ["SWITCHBOARD_TOPIC_RETENTION": "logs=5/1m"])
        #expect(fromEnvironment.broker.topicRetention["logs"] == RetentionPolicy(maxMessages: 5, maxAgeSeconds: 60))
        let file = try temporaryFile(named: "retention.yaml", contents: "topic-retention:\n  - orders=10/\n")
        let fromFile = try await ServeSettings.resolve(configFile: file, environment: [:])
        #expect(fromFile.broker.topicRetention["orders"]?.maxMessages == 10)
        await #expect(throws: SettingsError.self) {
            _ = try await ServeSettings.resolve(commandLine: [.topicRetention: "no-equals-sign"], environment: [:])
        }
    }

    @Test func valueParsersAcceptTheDocumentedForms() {
        #expect(SettingValue.hostAndPort("[::1]:80")! == ("::1", 80))
        #expect(SettingValue.hostAndPort("127.0.0.1:99999") == nil)
        #expect(SettingValue.duration("250ms") == .milliseconds(250))
        #expect(SettingValue.duration("2m") == .seconds(120))
        #expect(SettingValue.duration("3") == .seconds(3))
        #expect(SettingValue.byteSize("16KiB") == 16384)
        #expect(SettingValue.byteSize("1MB") == 1_000_000)
        #expect(SettingValue.bool("off") == false)
    }
}

/// Writes `contents` to a fresh file in a temporary directory and returns its path.
func temporaryFile(named name: String, contents: String) throws -> String {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString)
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    let path = directory.appendingPathComponent(name).path
    try contents.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}
