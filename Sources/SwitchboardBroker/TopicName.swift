/// Topic names are 1 to 200 characters of `A-Z a-z 0-9 . _ -`.
public enum TopicName {
    /// Prefixes of topics only the server writes: `jobs.` carries job state changes.
    public static let reservedPrefixes = ["jobs."]

    /// Whether clients may only read `name`.
    public static func isReserved(_ name: String) -> Bool {
        reservedPrefixes.contains { name.hasPrefix($0) }
    }

    public static func isValid(_ name: some StringProtocol) -> Bool {
        (1...200).contains(name.utf8.count)
            && name.utf8.allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                    UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
                    true
                default:
                    false
                }
            }
    }
}
