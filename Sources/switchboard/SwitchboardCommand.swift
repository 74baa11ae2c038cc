import ArgumentParser
import NIOCore
import NIOPosix

/// `switchboard`: the command-line entry point; `serve` is the default subcommand.
@main
struct SwitchboardCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchboard",
        abstract: "One server for every way a backend talks.",
        subcommands: [ServeCommand.self],
        defaultSubcommand: ServeCommand.self
    )

    /// Hands Swift Concurrency's global executor to NIO's event loops before anything runs, so that a
    /// connection's task resumes on its own loop's thread instead of hopping to the concurrency pool.
    static func main() async {
        NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        await runCommandLine()
    }

    private static func runCommandLine() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}
