import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOPosix

/// The server's log lines, in swift-log's `StreamLogHandler` format
/// (`2026-12-02T18:06:58+0000 info switchboard: key=value … [Module] message`), written at once to the
/// same output as the access log (after the lines the writing thread has buffered).
public struct BufferedLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    private let label: String
    private let output: LogOutput

    public init(label: String, level: Logger.Level, output: LogOutput = .standardError) {
        self.label = label
        self.logLevel = level
        self.output = output
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        // The handler's metadata and the line's, sorted by key, the line's winning (as StreamLogHandler).
        var pairs: [(key: String, value: Logger.MetadataValue)] = []
        pairs.reserveCapacity(metadata.count + (event.metadata?.count ?? 0) + 1)
        for (key, value) in metadata where event.metadata?[key] == nil {
            pairs.append((key, value))
        }
        for (key, value) in event.metadata ?? [:] {
            pairs.append((key, value))
        }
        if let error = event.error {
            pairs.append(("error.message", "\(error)"))
        }
        pairs.sort { $0.key < $1.key }
        let level = event.level
        let label = label
        let source = event.source
        let message = event.message
        output.append(buffered: false) { line, timestamp in
            line += timestamp
            line += " "
            line += level.rawValue
            line += " "
            line += label
            line += ":"
            for (key, value) in pairs {
                line += " "
                line += key
                line += "="
                if case .string(let text) = value {
                    line += text
                } else {
                    line += value.description
                }
            }
            line += " ["
            line += source
            line += "] "
            line += message.description
            line += "\n"
        }
    }
}

/// One line per request or connection (`… info switchboard: bytes_in=… log=access [Module] GET / 200`),
/// in the log's format. These are the hot lines: each thread appends them to a buffer of its own, and a
/// background writer empties the buffers every 100 ms, or as soon as one fills — an event loop never
/// waits for the terminal or the file behind the output, and takes no lock another thread holds.
public struct AccessLog: Sendable {
    private let label: String
    private let output: LogOutput

    public init(label: String, output: LogOutput = .standardError) {
        self.label = label
        self.output = output
    }

    /// Appends a line: `fields` as `key=value` in the order given (sorted by key, as in other lines; the
    /// `log=access` mark goes in its place), then `[source] message`.
    public func write(_ message: String, fields: KeyValuePairs<String, String>, source: String) {
        output.append(buffered: true) { line, timestamp in
            line += timestamp
            line += " info "
            line += label
            line += ":"
            var marked = false
            for (key, value) in fields {
                if !marked, key > "log" {
                    line += " log=access"
                    marked = true
                }
                line += " "
                line += key
                line += "="
                line += value
            }
            if !marked {
                line += " log=access"
            }
            line += " ["
            line += source
            line += "] "
            line += message
            line += "\n"
        }
    }
}

/// Where log lines go: per-thread buffers emptied by one background writer into a file descriptor.
public final class LogOutput: Sendable {
    /// Standard error, emptied every 100 ms.
    public static let standardError = LogOutput(fileDescriptor: STDERR_FILENO)

    /// The lines one thread has written and not yet handed to the writer, and its clock.
    private final class ThreadBuffer: Sendable {
        let state = NIOLockedValueBox((text: "", second: 0, timestamp: ""))
    }

    private static let flushBytes = 64 * 1024
    private let fileDescriptor: CInt
    private let buffers = NIOLockedValueBox([ThreadBuffer]())
    private let threadBuffer = ThreadSpecificVariable<ThreadBuffer>()
    private let writer = DispatchQueue(label: "switchboard.log-writer")
    private let interval: DispatchTimeInterval

    init(fileDescriptor: CInt, interval: DispatchTimeInterval = .milliseconds(100)) {
        self.fileDescriptor = fileDescriptor
        self.interval = interval
        writeBufferedRepeatedly()
    }

    private func writeBufferedRepeatedly() {
        writer.asyncAfter(deadline: .now() + interval) { [weak self] in
            self?.writeBuffered()
            self?.writeBufferedRepeatedly()
        }
    }

    /// Formats a line into this thread's buffer (`format` gets the line so far and the time, to the
    /// second, as `StreamLogHandler` writes it); unless `buffered`, the buffer is written at once.
    func append(buffered: Bool, _ format: (inout String, String) -> Void) {
        let buffer = currentThreadBuffer()
        let full = buffer.state.withLockedValue { state -> String? in
            let now = time(nil)
            if now != state.second {
                state.second = now
                state.timestamp = Self.timestamp(now)
            }
            format(&state.text, state.timestamp)
            guard !buffered || state.text.utf8.count >= Self.flushBytes else { return nil }
            defer { state.text = "" }
            return state.text
        }
        guard let full else { return }
        if buffered {
            writer.async { self.write(full) }
        } else {
            writer.sync { self.write(full) }
        }
    }

    /// Writes every buffered line now (at exit, say).
    public func flush() {
        writer.sync { writeBuffered() }
    }

    private func currentThreadBuffer() -> ThreadBuffer {
        if let buffer = threadBuffer.currentValue {
            return buffer
        }
        let buffer = ThreadBuffer()
        threadBuffer.currentValue = buffer
        buffers.withLockedValue { $0.append(buffer) }
        return buffer
    }

    /// On the writer's queue: empties every thread's buffer into the file.
    private func writeBuffered() {
        let texts = buffers.withLockedValue { buffers in
            buffers.map { buffer in
                buffer.state.withLockedValue { state in
                    defer { state.text = "" }
                    return state.text
                }
            }
        }
        for text in texts where !text.isEmpty {
            write(text)
        }
    }

    private func write(_ text: String) {
        var text = text
        text.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = Foundation.write(fileDescriptor, bytes.baseAddress! + offset, bytes.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return  // Nowhere to report it: the log itself cannot be written.
                }
                offset += written
            }
        }
    }

    /// `2026-12-02T18:06:58+0000`, local time, as `StreamLogHandler` writes it.
    private static func timestamp(_ seconds: time_t) -> String {
        var seconds = seconds
        var parts = tm()
        localtime_r(&seconds, &parts)
        var buffer = [CChar](repeating: 0, count: 64)
        let count = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S%z", &parts)
        return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
