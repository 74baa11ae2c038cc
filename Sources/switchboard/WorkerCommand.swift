import ArgumentParser
import Foundation
import SwitchboardClient

/// `switchboard worker --queue Q -- CMD ARGS…`: an external worker that runs a command per job.
struct WorkerCommand: SwitchboardClientCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run a command for each job of a queue.",
        discussion: """
            Claims jobs from the queue (long polling), runs CMD with the job's input as JSON on standard input \
            and SWITCHBOARD_JOB_ID, SWITCHBOARD_JOB_TYPE and SWITCHBOARD_JOB_ATTEMPT in its environment, and \
            heartbeats while it runs. Exit status 0 completes the job with standard output as its result (JSON \
            if it parses, else a string); any other status fails the attempt with standard error as the reason, \
            and exit status 100 fails it without retry.
            """
    )

    @OptionGroup var client: ClientOptions
    @Option(help: "The queue to take jobs from.") var queue: String
    @Option(help: "Seconds each lease lasts; heartbeats renew it every third of that.") var lease: Double = 30
    @Option(help: "Jobs run at once.") var concurrency = 1
    @Option(help: "Stop after this many jobs (default: run until stopped).") var maxJobs: Int?
    @Argument(parsing: .postTerminator, help: "The command and its arguments, after --.") var command: [String]

    func validate() throws {
        guard !command.isEmpty else { throw ValidationError("Give the command to run after --") }
        guard lease >= 1, concurrency >= 1 else {
            throw ValidationError("--lease must be 1 or more, --concurrency 1 or more")
        }
    }

    func run() async throws {
        let worker = CommandWorker(
            client: SwitchboardClient(baseURL: client.url),
            queue: queue,
            leaseSeconds: lease,
            command: command
        )
        let budget = JobBudget(maxJobs)
        await withDiscardingTaskGroup { group in
            for _ in 0..<concurrency {
                group.addTask { await worker.work(budget: budget) }
            }
        }
    }
}

/// How many jobs the worker may still take, shared by its loops.
actor JobBudget {
    private var left: Int?

    init(_ limit: Int?) {
        left = limit
    }

    /// Takes one job from the budget; `false` once it is spent.
    func take() -> Bool {
        guard let remaining = left else { return true }
        left = remaining - 1
        return remaining > 0
    }
}

/// Claims jobs and runs the command for each, reporting the outcome.
struct CommandWorker: Sendable {
    let client: SwitchboardClient
    let queue: String
    let leaseSeconds: Double
    let command: [String]

    /// Exit status of the command that means "do not retry".
    static let permanentFailureStatus: Int32 = 100

    func work(budget: JobBudget) async {
        while await budget.take() {
            do {
                var job: SwitchboardClient.JobInfo?
                while job == nil {
                    job = try await client.claim(queue: queue, wait: 30, leaseSeconds: leaseSeconds)
                }
                if let job { await run(job) }
            } catch {
                log("claim failed: \(error)")
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    private func run(_ job: SwitchboardClient.JobInfo) async {
        guard let token = job.leaseToken else { return }
        log("job \(job.id) attempt \(job.attempts): running \(command.joined(separator: " "))")
        let process = ChildProcess(
            command: command,
            environment: [
                "SWITCHBOARD_JOB_ID": job.id, "SWITCHBOARD_JOB_TYPE": job.type,
                "SWITCHBOARD_JOB_ATTEMPT": String(job.attempts),
            ]
        )
        let outcome: ChildProcess.Outcome
        do {
            outcome = try await withThrowingTaskGroup(of: ChildProcess.Outcome?.self) { group in
                group.addTask { try await process.run(input: job.input, timeout: job.timeoutSeconds) }
                group.addTask { try await heartbeat(job, token: token, process: process) }
                defer { group.cancelAll() }
                while let next = try await group.next() {
                    if let outcome = next { return outcome }
                }
                throw CancellationError()
            }
        } catch {
            log("job \(job.id): \(error)")
            _ = try? await client.fail(id: job.id, token: token, error: "\(error)")
            return
        }
        await report(outcome, of: job, token: token)
    }

    /// Renews the lease until cancelled; stops the command when the lease is lost.
    private func heartbeat(_ job: SwitchboardClient.JobInfo, token: String, process: ChildProcess) async throws
        -> ChildProcess.Outcome?
    {
        while true {
            try await Task.sleep(for: .milliseconds(Int64(leaseSeconds * 1000 / 3)))
            do {
                try await client.heartbeat(id: job.id, token: token, leaseSeconds: leaseSeconds)
            } catch let error as SwitchboardError where error.code == "lease_lost" || error.code == "job_not_found" {
                log("job \(job.id): lease lost (\(error.message)); stopping the command")
                process.terminate()
            } catch {
                log("job \(job.id): heartbeat failed: \(error)")
            }
        }
    }

    private func report(_ outcome: ChildProcess.Outcome, of job: SwitchboardClient.JobInfo, token: String) async {
        do {
            switch outcome {
            case .exited(0, let stdout, _):
                _ = try await client.complete(id: job.id, token: token, result: Self.result(from: stdout))
                log("job \(job.id): succeeded")
            case .exited(let status, _, let stderr):
                let reason = String(decoding: stderr.suffix(2000), as: UTF8.self)
                    .trimmingCharacters(in: .whitespacesAndNewlines)
                _ = try await client.fail(
                    id: job.id,
                    token: token,
                    error: reason.isEmpty ? "exit status \(status)" : reason,
                    retry: status != Self.permanentFailureStatus
                )
                log("job \(job.id): failed with exit status \(status)")
            case .timedOut:
                _ = try await client.fail(id: job.id, token: token, error: "timed out after \(job.timeoutSeconds) s")
                log("job \(job.id): timed out")
            }
        } catch {
            log("job \(job.id): outcome not recorded: \(error)")
        }
    }

    /// Standard output as the job's result: itself when it is JSON, else a JSON string.
    static func result(from stdout: Data) -> Data {
        let text = String(decoding: stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if let data = text.data(using: .utf8),
            (try? JSONSerialization.jsonObject(with: data, options: .fragmentsAllowed)) != nil,
            !text.isEmpty
        {
            return data
        }
        return (try? JSONSerialization.data(withJSONObject: text, options: .fragmentsAllowed)) ?? Data("null".utf8)
    }

    private func log(_ line: String) {
        FileHandle.standardError.write(Data("switchboard worker: \(line)\n".utf8))
    }
}
