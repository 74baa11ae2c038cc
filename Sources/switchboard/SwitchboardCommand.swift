import ArgumentParser
import NIOCore
import NIOPosix

/// `switchboard`: the command-line entry point; `serve` is the default subcommand.
@main
struct SwitchboardCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchboard",
        abstract: "One server for every way a backend talks.",
        subcommands: [
            ServeCommand.self, PublishCommand.self, SubscribeCommand.self, JobCommand.self, WorkerCommand.self,
            UploadCommand.self, TokenCommand.self, BenchCommand.self, EdgeCommand.self,
        ],
        defaultSubcommand: ServeCommand.self
    )

    /// `edge` runs its tasks on NIO's event loops rather than Swift Concurrency's own thread pool: each
    /// proxied request hops between the network and the upstream client, and sharing the threads takes
    /// out most thread switches (about a quarter more requests/s). It must be set on the main thread
    /// before any task runs, so it is decided here, from the subcommand's name.
    static func main() async {
        if CommandLine.arguments.dropFirst().first == EdgeCommand.configuration.commandName {
            NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        }
        await main(nil)
    }
}
