import ArgumentParser
import Foundation

/// Where the client commands find the server.
struct ClientOptions: ParsableArguments {
    @Option(help: "Server URL (SWITCHBOARD_URL; default http://127.0.0.1:8080).")
    var url: String = ProcessInfo.processInfo.environment["SWITCHBOARD_URL"] ?? "http://127.0.0.1:8080"

    @Option(help: "The server's gRPC listener, HOST:PORT, for --via grpc (SWITCHBOARD_GRPC; default 127.0.0.1:50051).")
    var grpc: String = ProcessInfo.processInfo.environment["SWITCHBOARD_GRPC"] ?? "127.0.0.1:50051"
}

extension SwitchboardClientCommand {
    /// Prints a client error as one line and exits 1, so scripts can rely on the status.
    static func failing(_ error: any Error) -> ExitCode {
        FileHandle.standardError.write(Data("switchboard: \(error)\n".utf8))
        return ExitCode(1)
    }
}

/// Marker for commands that talk to a running server.
protocol SwitchboardClientCommand: AsyncParsableCommand {}
