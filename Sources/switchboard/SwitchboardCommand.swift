import ArgumentParser

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
}
