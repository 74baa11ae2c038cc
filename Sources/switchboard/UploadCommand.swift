import ArgumentParser
import Foundation
import NIOCore
import Switchboard
import SwitchboardClient
import SwitchboardEngine
import Synchronization

/// `switchboard upload FILE`: a resumable upload (tus) with a progress bar.
struct UploadCommand: SwitchboardClientCommand {
    static let configuration = CommandConfiguration(
        commandName: "upload",
        abstract: "Upload a file, resumably.",
        discussion: """
            Sends the file over the tus protocol and prints its URL: in one request by default (the server \
            keeps what arrived if it breaks off), or in --chunk-size requests. The upload URL is remembered \
            (in ~/.switchboard/uploads.json), so running the same command again after a failure resumes \
            where the server's offset says. Shows a progress bar on a terminal, progress lines otherwise.
            """
    )

    @OptionGroup var client: ClientOptions
    @Argument(help: "The file.") var file: String
    @Option(help: "Bytes per request, such as 64MiB (default: the rest of the file in one request).")
    var chunkSize: String?
    @Option(name: .customLong("metadata"), help: "KEY=VALUE metadata, repeatable; job=sha256 starts a job.")
    var metadata: [String] = []

    func run() async throws {
        let chunk = chunkSize.map { SettingValue.byteSize($0) ?? 0 } ?? Int.max
        guard chunk > 0 else {
            throw ValidationError("--chunk-size must be a size such as 64MiB")
        }
        let url = URL(fileURLWithPath: file).standardizedFileURL
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: url.path),
            let size = (attributes[.size] as? NSNumber)?.int64Value
        else { throw ValidationError("Cannot read \(file)") }
        var fields = ["filename": url.lastPathComponent]
        for pair in metadata {
            let parts = pair.split(separator: "=", maxSplits: 1)
            guard parts.count == 2 else { throw ValidationError("--metadata takes KEY=VALUE, got \(pair)") }
            fields[String(parts[0])] = String(parts[1])
        }
        let modified = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        let remembered = RememberedUploads(key: "\(client.url) \(url.path) \(size) \(modified)")
        do {
            let path = try await upload(url, size: size, chunk: chunk, fields: fields, remembered: remembered)
            remembered.forget()
            print(client.url + path)
        } catch {
            throw Self.failing(error)
        }
    }

    private func upload(
        _ url: URL,
        size: Int64,
        chunk: Int,
        fields: [String: String],
        remembered: RememberedUploads
    ) async throws -> String {
        let server = SwitchboardClient(baseURL: client.url, timeout: .minutes(10))
        var path = remembered.path
        var offset: Int64 = 0
        if let known = path, let status = try? await server.uploadOffset(known) {
            offset = status.offset
        } else {
            path = try await server.createUpload(length: size, metadata: fields)
            remembered.remember(path!)
        }
        guard let path else { throw ValidationError("No upload") }
        let progress = Progress(total: size, resumedAt: offset)
        progress.show(offset)
        while offset < size {
            let count = min(Int64(chunk), size - offset)
            offset = try await server.appendUpload(path, offset: offset, from: url.path, count: count) {
                progress.show($0)
            }
            progress.show(offset)
        }
        progress.finish()
        return path
    }
}

/// Upload URLs by file, so that a second run resumes the first.
struct RememberedUploads {
    let key: String
    private let store = FileManager.default.homeDirectoryForCurrentUser
        .appendingPathComponent(".switchboard/uploads.json")

    var path: String? { entries()[key] }

    func remember(_ path: String) {
        var all = entries()
        all[key] = path
        write(all)
    }

    func forget() {
        var all = entries()
        all[key] = nil
        write(all)
    }

    private func entries() -> [String: String] {
        guard let data = try? Data(contentsOf: store) else { return [:] }
        return (try? JSONDecoder().decode([String: String].self, from: data)) ?? [:]
    }

    private func write(_ entries: [String: String]) {
        try? FileManager.default.createDirectory(
            at: store.deletingLastPathComponent(),
            withIntermediateDirectories: true
        )
        try? JSONEncoder().encode(entries).write(to: store, options: .atomic)
    }
}

/// Progress on standard output: a bar redrawn at most ten times a second on a terminal, otherwise a line
/// for each whole percent.
final class Progress: Sendable {
    private struct Shown {
        var percent = -1
        var drawnAt = Date.distantPast
    }

    let total: Int64
    let start = Date()
    let resumedAt: Int64
    let isTerminal = isatty(STDOUT_FILENO) == 1
    private let shown = Mutex(Shown())

    init(total: Int64, resumedAt: Int64) {
        self.total = total
        self.resumedAt = resumedAt
    }

    func show(_ done: Int64) {
        let fraction = total == 0 ? 1 : Double(done) / Double(total)
        let due = shown.withLock { shown in
            let percent = Int(fraction * 100)
            let now = Date()
            let due =
                isTerminal ? now.timeIntervalSince(shown.drawnAt) >= 0.1 || done == total : percent != shown.percent
            if due {
                shown.percent = percent
                shown.drawnAt = now
            }
            return due
        }
        guard due else { return }
        let elapsed = max(Date().timeIntervalSince(start), 0.001)
        let rate = Double(done - resumedAt) / elapsed
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let figures =
            "\(Int(fraction * 100))% \(Self.size(Double(done))) of \(Self.size(Double(total))), "
            + "\(Self.size(rate))/s, ETA \(Int(eta.rounded()))s"
        if isTerminal {
            let filled = Int(fraction * 30)
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: 30 - filled)
            FileHandle.standardOutput.write(Data("\r[\(bar)] \(figures)   ".utf8))
        } else {
            // Written at once, not buffered: a script reading the lines sees progress as it happens.
            FileHandle.standardOutput.write(Data("uploaded \(done) of \(total) bytes: \(figures)\n".utf8))
        }
    }

    func finish() {
        if isTerminal { print("") }
    }

    static func size(_ bytes: Double) -> String {
        let units = ["B", "KiB", "MiB", "GiB"]
        var value = bytes
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return "\((value * 10).rounded() / 10) \(units[unit])"
    }
}
