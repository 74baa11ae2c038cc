import Foundation

/// A setting that cannot be used; start-up stops with `description` as its one line.
public struct SettingsError: Error, CustomStringConvertible, Equatable {
    /// The setting's key, as in the config file (`max-body-bytes`).
    public var key: String
    public var problem: String

    public init(key: String, problem: String) {
        self.key = key
        self.problem = problem
    }

    public var description: String {
        let flag = "--\(key)"
        let environment = "SWITCHBOARD_" + key.uppercased().replacingOccurrences(of: "-", with: "_")
        return "invalid setting \(key) (\(flag), \(environment)): \(problem)"
    }
}
