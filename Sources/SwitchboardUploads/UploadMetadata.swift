import Foundation

/// The `Upload-Metadata` header of tus 1.0: comma-separated pairs of a key and, after a space, its value
/// in base64; a key may come without a value.
public struct UploadMetadata: Sendable, Equatable {
    public private(set) var values: [String: String] = [:]

    /// - Returns: `nil` when the header is malformed (a bad key, bad base64, or a repeated key).
    public init?(header: String) {
        for pair in header.split(separator: ",") {
            let parts = pair.trimmingCharacters(in: .whitespaces).split(separator: " ", omittingEmptySubsequences: true)
            guard (1...2).contains(parts.count), !parts[0].isEmpty, values[String(parts[0])] == nil,
                !parts[0].contains(",")
            else { return nil }
            var value = ""
            if parts.count == 2 {
                guard let decoded = Data(base64Encoded: String(parts[1])) else { return nil }
                value = String(decoding: decoded, as: UTF8.self)
            }
            values[String(parts[0])] = value
        }
    }

    public subscript(key: String) -> String? { values[key] }
}
