import SwitchboardEngine

/// Typed access to a request's query parameters; a bad value is a 400 with code `invalid_parameter`.
struct QueryParameters {
    private let values: [String: String]

    init(_ request: Request) {
        values = request.query
    }

    /// The integer `name`, `nil` when absent; throws when it is not an integer within `range`.
    func integer(_ name: String, in range: ClosedRange<Int64>) throws -> Int64? {
        guard let text = values[name] else { return nil }
        guard let value = Int64(text), range.contains(value) else {
            throw HTTPError.badRequest(
                code: "invalid_parameter",
                message: "\(name) must be an integer from \(range.lowerBound) to \(range.upperBound), got '\(text)'"
            )
        }
        return value
    }

    /// The number of seconds `name`, as a duration; fractions allowed.
    func seconds(_ name: String, max: Double) throws -> Duration? {
        guard let text = values[name] else { return nil }
        guard let value = Double(text), value >= 0, value <= max else {
            throw HTTPError.badRequest(
                code: "invalid_parameter",
                message: "\(name) must be a number of seconds from 0 to \(Int(max)), got '\(text)'"
            )
        }
        return .milliseconds(Int64(value * 1000))
    }
}
