import Foundation
import NIOCore

/// Parsers for the textual forms settings take in flags, environment variables and config files; the
/// client commands and the edge configuration read their sizes and durations with them too.
public enum SettingValue {
    /// `HOST:PORT`, with IPv6 hosts in brackets (`[::1]:8080`).
    public static func hostAndPort(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port)
        else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") {
            host = String(host.dropFirst().dropLast())
        }
        return host.isEmpty ? nil : (host, port)
    }

    /// A duration: `250ms`, `10s`, `2m`, or a plain number of seconds.
    public static func duration(_ text: String) -> TimeAmount? {
        let units: [(suffix: String, nanoseconds: Double)] = [("ms", 1e6), ("s", 1e9), ("m", 60e9), ("h", 3600e9)]
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let (number, scale) =
            units.first { trimmed.hasSuffix($0.suffix) }
            .map { (String(trimmed.dropLast($0.suffix.count)), $0.nanoseconds) } ?? (trimmed, 1e9)
        guard let value = Double(number), value >= 0, value.isFinite else { return nil }
        return .nanoseconds(Int64(value * scale))
    }

    /// A byte size: `512`, `16KiB`, `1MiB`, `1GiB` (also `KB`, `MB`, `GB` as powers of 1000).
    public static func byteSize(_ text: String) -> Int? {
        let units: [(suffix: String, bytes: Int)] = [
            ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("KB", 1000), ("MB", 1_000_000),
            ("GB", 1_000_000_000),
        ]
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let (number, scale) =
            units.first { trimmed.hasSuffix($0.suffix) }
            .map { (String(trimmed.dropLast($0.suffix.count)), $0.bytes) } ?? (trimmed, 1)
        guard let value = Int(number.trimmingCharacters(in: .whitespaces)), value >= 0 else { return nil }
        let (bytes, overflow) = value.multipliedReportingOverflow(by: scale)
        return overflow ? nil : bytes
    }

    /// `true`/`false`, `on`/`off`, `yes`/`no`, `1`/`0`.
    public static func bool(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "true", "on", "yes", "1": true
        case "false", "off", "no", "0": false
        default: nil
        }
    }
}
