import ArgumentParser
import Foundation
import SwitchboardClient

/// `switchboard job submit | status | wait | cancel | list`.
struct JobCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "job",
        abstract: "Submit, follow and cancel jobs.",
        subcommands: [Submit.self, Status.self, Wait.self, Cancel.self, List.self]
    )

    struct Submit: SwitchboardClientCommand {
        static let configuration = CommandConfiguration(
            abstract: "Submit a job and print it as JSON.",
            discussion: "Built-in types on the default queue: sleep, sha256, http.request."
        )

        @OptionGroup var client: ClientOptions
        @Argument(help: "The job type, such as sha256.") var type: String
        @Argument(help: #"The input as JSON, such as '{"data":"hi"}'; - reads standard input."#) var input = "null"
        @Option(help: "The queue (default: default, served by the built-in workers).") var queue: String?
        @Option(help: "Attempts before the job is dead.") var maxAttempts: Int?
        @Option(help: "Seconds one attempt may run.") var timeout: Double?
        @Option(help: "Higher runs first.") var priority: Int?
        @Option(help: "Seconds to wait before the job may run.") var delay: Double?
        @Option(help: "Deduplicates submissions with the same key within the unique window.") var uniqueKey: String?
        @Option(help: "Retries with the same key get the first answer.") var idempotencyKey: String?
        @Option(help: "Seconds to wait for the job to finish (a synchronous call).") var wait: Double?

        func run() async throws {
            let text =
                input == "-" ? String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self) : input
            do {
                let options = SwitchboardClient.JobOptions(
                    queue: queue,
                    maxAttempts: maxAttempts,
                    timeoutSeconds: timeout,
                    priority: priority,
                    delaySeconds: delay,
                    uniqueKey: uniqueKey
                )
                let job = try await SwitchboardClient(baseURL: client.url)
                    .submitJob(
                        type: type,
                        input: Data(text.utf8),
                        options: options,
                        wait: wait,
                        idempotencyKey: idempotencyKey
                    )
                print(job.json)
            } catch {
                throw Self.failing(error)
            }
        }
    }

    struct Status: SwitchboardClientCommand {
        static let configuration = CommandConfiguration(abstract: "Print a job as JSON.")

        @OptionGroup var client: ClientOptions
        @Argument(help: "The job id.") var id: String

        func run() async throws {
            do {
                print(try await SwitchboardClient(baseURL: client.url).job(id: id).json)
            } catch {
                throw Self.failing(error)
            }
        }
    }

    struct Wait: SwitchboardClientCommand {
        static let configuration = CommandConfiguration(
            abstract: "Wait for a job to finish and print it; exits 0 only if it succeeded."
        )

        @OptionGroup var client: ClientOptions
        @Argument(help: "The job id.") var id: String
        @Option(help: "Seconds to wait at most.") var timeout: Double = 3600

        func run() async throws {
            let job: SwitchboardClient.JobInfo
            do {
                job = try await SwitchboardClient(baseURL: client.url).job(id: id, finishedWithin: timeout)
            } catch {
                throw Self.failing(error)
            }
            print(job.json)
            if job.state != "succeeded" {
                throw ExitCode(job.isFinal ? 1 : 2)
            }
        }
    }

    struct Cancel: SwitchboardClientCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel a queued or running job.")

        @OptionGroup var client: ClientOptions
        @Argument(help: "The job id.") var id: String

        func run() async throws {
            do {
                print(try await SwitchboardClient(baseURL: client.url).cancelJob(id: id).json)
            } catch {
                throw Self.failing(error)
            }
        }
    }

    struct List: SwitchboardClientCommand {
        static let configuration = CommandConfiguration(
            abstract: "List jobs, newest first; --state dead lists the dead letters."
        )

        @OptionGroup var client: ClientOptions
        @Option(help: "Only this queue.") var queue: String?
        @Option(help: "Only this state: queued, running, succeeded, failed, dead or cancelled.") var state: String?
        @Option(help: "At most this many.") var limit = 100

        func run() async throws {
            do {
                print(
                    try await SwitchboardClient(baseURL: client.url).jobsListing(
                        queue: queue,
                        state: state,
                        limit: limit
                    )
                )
            } catch {
                throw Self.failing(error)
            }
        }
    }
}
