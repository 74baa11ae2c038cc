/// One event of a `text/event-stream`.
public struct ServerSentEvent: Sendable, Equatable {
    public var id: String?
    public var event: String?
    public var data: String

    public init(id: String?, event: String?, data: String) {
        self.id = id
        self.event = event
        self.data = data
    }
}

/// Folds the lines of a `text/event-stream` into events, as the WHATWG HTML standard's "event stream
/// interpretation" says: `field: value` lines accumulate, a blank line dispatches, `:` lines are
/// comments. (The Swift SSE client libraries on offer need `URLSession.bytes`, which Linux lacks.)
public struct ServerSentEventParser: Sendable {
    private var id: String?
    private var event: String?
    private var data: [Substring] = []
    private var hasData = false

    public init() {}

    /// Feeds one line without its line ending; returns an event when the line completes one.
    public mutating func consume(line: String) -> ServerSentEvent? {
        if line.isEmpty {
            defer {
                event = nil
                data = []
                hasData = false
            }
            return hasData ? ServerSentEvent(id: id, event: event, data: data.joined(separator: "\n")) : nil
        }
        if line.hasPrefix(":") { return nil }
        let parts = line.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        var value = parts.count > 1 ? parts[1] : ""
        if value.hasPrefix(" ") { value = value.dropFirst() }
        switch parts[0] {
        case "data":
            data.append(value)
            hasData = true
        case "id": id = String(value)
        case "event": event = String(value)
        default: break  // `retry` and unknown fields do not change the events.
        }
        return nil
    }
}
