import Foundation

/// The store keeps times as milliseconds since 1970 and spans as milliseconds.
extension Date {
    public var millisecondsSince1970: Int64 { Int64(timeIntervalSince1970 * 1000) }
}

extension Duration {
    /// The duration in whole milliseconds.
    public var milliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }
}
