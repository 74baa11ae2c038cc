import Foundation
import SwitchboardStore

/// How a job looks in JSON, in API answers and in the state-change events on its topic: keys sorted,
/// times in milliseconds since 1970, `input` and `result` as the JSON they were given.
///
/// Written directly rather than through `JSONEncoder`: events are rendered inside the store's write
/// transaction, and the stored input and result are already JSON, so they are copied, not re-encoded.
public enum JobJSON {
    /// - Parameter withLease: include the lease token (for the worker that claimed the job only).
    public static func encode(_ job: Job, withLease: Bool = false) -> Data {
        var json = JSONObjectWriter()
        json.number("attempts", job.attempts)
        json.number("createdAt", job.createdAt)
        json.string("error", job.error)
        json.string("id", job.id)
        json.raw("input", job.input)
        if withLease, let token = job.leaseToken, let expiry = job.leaseExpiresAt {
            json.raw("lease", Data(#"{"expiresAt":\#(expiry),"token":"\#(token)"}"#.utf8))
        }
        json.number("maxAttempts", job.maxAttempts)
        json.number("priority", job.priority)
        json.string("queue", job.queue)
        json.raw("result", job.result)
        json.number("runAt", job.runAt)
        json.string("state", job.state.rawValue)
        json.raw("timeoutSeconds", Data(String(job.timeoutSeconds).utf8))
        json.string("type", job.type)
        json.string("uniqueKey", job.uniqueKey)
        json.number("updatedAt", job.updatedAt)
        json.number("version", job.version)
        return json.finish()
    }

    /// `{"jobs": [...]}`.
    public static func encode(list jobs: [Job]) -> Data {
        var data = Data(#"{"jobs":["#.utf8)
        for (index, job) in jobs.enumerated() {
            if index > 0 { data.append(UInt8(ascii: ",")) }
            data.append(encode(job))
        }
        data.append(contentsOf: Array("]}".utf8))
        return data
    }
}

/// Writes one JSON object member by member; absent (`nil`) members are left out.
struct JSONObjectWriter {
    private var bytes: [UInt8]

    init() {
        bytes = [UInt8(ascii: "{")]
        bytes.reserveCapacity(512)
    }

    mutating func string(_ key: String, _ value: String?) {
        guard let value else { return }
        member(key)
        Self.quote(value, into: &bytes)
    }

    mutating func number(_ key: String, _ value: some BinaryInteger) {
        member(key)
        bytes.append(contentsOf: String(value).utf8)
    }

    /// A member whose value is JSON text already.
    mutating func raw(_ key: String, _ json: Data?) {
        guard let json else { return }
        member(key)
        bytes.append(contentsOf: json)
    }

    mutating func finish() -> Data {
        bytes.append(UInt8(ascii: "}"))
        return Data(bytes)
    }

    private mutating func member(_ key: String) {
        if bytes.count > 1 { bytes.append(UInt8(ascii: ",")) }
        Self.quote(key, into: &bytes)
        bytes.append(UInt8(ascii: ":"))
    }

    /// A JSON string literal (RFC 8259 §7): quote, backslash and control characters escaped.
    static func quote(_ text: String, into bytes: inout [UInt8]) {
        bytes.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case UInt8(ascii: "\n"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case UInt8(ascii: "\r"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case UInt8(ascii: "\t"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0..<0x20: bytes.append(contentsOf: Array(String(format: "\\u%04x", byte).utf8))
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
