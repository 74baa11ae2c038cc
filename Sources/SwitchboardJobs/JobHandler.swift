/// Runs jobs of one type inside the server (a built-in worker).
public protocol JobHandler: Sendable {
    /// The job type it runs, such as `sha256`.
    var type: String { get }
    /// Checks a job's input when it is submitted; throws `JobInputError` to refuse it.
    func validate(_ input: JSONValue) throws
    /// Runs one attempt and returns the result. Throwing fails the attempt: it is retried unless the error
    /// is a `PermanentJobFailure`. Cancelled when the attempt times out or loses its lease.
    func run(_ input: JSONValue) async throws -> JSONValue
}

/// Input a handler cannot run.
public struct JobInputError: Error, Sendable {
    public var message: String

    public init(_ message: String) {
        self.message = message
    }
}

/// A failure that retrying cannot fix: the job ends `failed` at once.
public struct PermanentJobFailure: Error, Sendable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}

/// The built-in handlers, by job type.
public struct JobHandlers: Sendable {
    private var handlers: [String: any JobHandler] = [:]

    public init(_ handlers: [any JobHandler]) {
        for handler in handlers {
            self.handlers[handler.type] = handler
        }
    }

    public subscript(type: String) -> (any JobHandler)? {
        handlers[type]
    }

    /// The job types there are handlers for, sorted.
    public var types: [String] { handlers.keys.sorted() }
}
