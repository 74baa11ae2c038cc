/// Writes one JSON object (RFC 8259) member by member, in the order given; absent (`nil`) members are left
/// out. The server's hand-written JSON — errors, WebSocket frames, jobs — goes through it; answers built
/// from `Codable` values use `JSONEncoder`.
public struct JSONObjectWriter: Sendable {
    private var bytes: [UInt8]

    public init(capacity: Int = 256) {
        bytes = [UInt8(ascii: "{")]
        bytes.reserveCapacity(capacity)
    }

    public mutating func string(_ key: String, _ value: String?) {
        guard let value else { return }
        member(key)
        Self.quote(value, into: &bytes)
    }

    public mutating func number(_ key: String, _ value: (some BinaryInteger)?) {
        guard let value else { return }
        member(key)
        bytes.append(contentsOf: String(value).utf8)
    }

    public mutating func bool(_ key: String, _ value: Bool?) {
        guard let value else { return }
        member(key)
        bytes.append(contentsOf: (value ? "true" : "false").utf8)
    }

    /// A member whose value is an array of strings.
    public mutating func strings(_ key: String, _ values: [String]?) {
        guard let values else { return }
        member(key)
        bytes.append(UInt8(ascii: "["))
        for (index, value) in values.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            Self.quote(value, into: &bytes)
        }
        bytes.append(UInt8(ascii: "]"))
    }

    /// A member whose value is JSON text already (a nested object, stored JSON).
    public mutating func raw(_ key: String, _ json: (some Sequence<UInt8>)?) {
        guard let json else { return }
        member(key)
        bytes.append(contentsOf: json)
    }

    /// A JSON array of objects, each written by `write`: a value for `raw`.
    public static func array<Item>(_ items: some Sequence<Item>, _ write: (inout JSONObjectWriter, Item) -> Void)
        -> [UInt8]
    {
        var bytes: [UInt8] = [UInt8(ascii: "[")]
        for item in items {
            if bytes.count > 1 { bytes.append(UInt8(ascii: ",")) }
            var writer = JSONObjectWriter()
            write(&writer, item)
            bytes += writer.finish()
        }
        bytes.append(UInt8(ascii: "]"))
        return bytes
    }

    /// The object's bytes, closed.
    public mutating func finish() -> [UInt8] {
        bytes.append(UInt8(ascii: "}"))
        return bytes
    }

    private mutating func member(_ key: String) {
        if bytes.count > 1 { bytes.append(UInt8(ascii: ",")) }
        Self.quote(key, into: &bytes)
        bytes.append(UInt8(ascii: ":"))
    }

    /// A JSON string literal: quote, backslash and control characters escaped; `/` left as it is.
    public static func quote(_ text: String, into bytes: inout [UInt8]) {
        bytes.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), byte])
            case UInt8(ascii: "\n"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case UInt8(ascii: "\r"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case UInt8(ascii: "\t"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: Array(#"\u00"#.utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 0xF)]])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
