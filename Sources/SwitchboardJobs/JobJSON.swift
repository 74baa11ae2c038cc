import Foundation
import SwitchboardEngine
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
        return Data(json.finish())
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
