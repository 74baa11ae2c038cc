/// Topic names are 1 to 200 characters of `A-Z a-z 0-9 . _ -`.
public enum TopicName {
    /// The topics of each job's state changes, `jobs.{id}`.
    public static let jobsPrefix = "jobs."
    /// The topic finished uploads are announced on.
    public static let uploads = "uploads"

    /// Topics only the server writes, by prefix and by name: every transport refuses client publishes
    /// to them, so their events cannot be forged.
    public static let reservedPrefixes = [jobsPrefix]
    public static let reservedNames = [uploads]

    /// Whether clients may only read `name`.
    public static func isReserved(_ name: String) -> Bool {
        reservedNames.contains(name) || reservedPrefixes.contains { name.hasPrefix($0) }
    }

    /// The reserved topics, for messages: `jobs.*, uploads`.
    public static var reservedDescription: String {
        (reservedPrefixes.map { $0 + "*" } + reservedNames).joined(separator: ", ")
    }

    /// Whether `name` is 1 to `maxLength` characters of `A-Z a-z 0-9 . _ -` — a topic's, or with another
    /// length another name of the same alphabet (queues, rooms, peers).
    public static func isValid(_ name: some StringProtocol, maxLength: Int = 200) -> Bool {
        (1...maxLength).contains(name.utf8.count)
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
