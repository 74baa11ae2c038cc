import Foundation
import Synchronization

/// One run of a command: input on standard input, both outputs collected, stopped at a timeout or on
/// request.
final class ChildProcess: Sendable {
    enum Outcome: Sendable {
        case exited(status: Int32, stdout: Data, stderr: Data)
        case timedOut
    }

    private let command: [String]
    private let environment: [String: String]
    private let process = Mutex<Process?>(nil)

    init(command: [String], environment: [String: String]) {
        self.command = command
        self.environment = environment
    }

    /// Starts the command (looked up on PATH) and waits for it to end or for `timeout` seconds.
    func run(input: Data, timeout: Double) async throws -> Outcome {
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        child.arguments = command
        child.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let stdin = Pipe()
        let stdout = Pipe()
        let stderr = Pipe()
        child.standardInput = stdin
        child.standardOutput = stdout
        child.standardError = stderr
        let exited = AsyncStream<Int32>.makeStream()
        child.terminationHandler = { process in
            exited.continuation.yield(process.terminationStatus)
            exited.continuation.finish()
        }
        try child.run()
        process.withLock { $0 = child }
        async let output = Self.readAll(stdout.fileHandleForReading)
        async let errors = Self.readAll(stderr.fileHandleForReading)
        DispatchQueue.global().async {
            // A command that exits without reading its input closes the pipe: the write then fails quietly.
            try? stdin.fileHandleForWriting.write(contentsOf: input)
            try? stdin.fileHandleForWriting.close()
        }

        let timedOut = Atomic(false)
        let timer = Task {
            try await Task.sleep(for: .milliseconds(Int64(timeout * 1000)))
            timedOut.store(true, ordering: .relaxed)
            child.terminate()
        }
        defer { timer.cancel() }
        var status: Int32 = -1
        for await code in exited.stream {
            status = code
        }
        let stdoutBytes = await output
        let stderrBytes = await errors
        if timedOut.load(ordering: .relaxed) {
            return .timedOut
        }
        return .exited(status: status, stdout: stdoutBytes, stderr: stderrBytes)
    }

    /// Stops the command (SIGTERM).
    func terminate() {
        process.withLock { $0 }?.terminate()
    }

    /// Reads a pipe to its end on a dispatch thread, off the task pool, so that a chatty command never
    /// blocks on a full pipe.
    private static func readAll(_ handle: FileHandle) async -> Data {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(returning: handle.readDataToEndOfFile())
            }
        }
    }
}
