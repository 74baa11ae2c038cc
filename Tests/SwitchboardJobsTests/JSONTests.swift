import Foundation
import Testing

@testable import SwitchboardJobs
@testable import SwitchboardStore

@Suite struct JSONTests {
    @Test func jsonValuesKeepEveryKindOfValue() throws {
        let text = #"{"a":[1,true,null,"x",{"b":2.5}],"c":false}"#
        let value = try #require(JSONValue(json: Data(text.utf8)))
        #expect(value["c"] == .bool(false))
        #expect(value["a"] == .array([.number(1), .bool(true), .null, .string("x"), .object(["b": .number(2.5)])]))
        #expect(JSONValue(json: value.data) == value)
        #expect(JSONValue(json: Data("{nope".utf8)) == nil)
    }

    @Test func jobsAreWrittenAsValidJSONWithTheirInputAsGiven() throws {
        let job = Job(
            id: "0190-id",
            queue: "q",
            type: "quote\"and\\slash\n\u{1}",
            input: Data(#"{"k":[1,2]}"#.utf8),
            state: .running,
            priority: 2,
            attempts: 1,
            maxAttempts: 3,
            timeoutSeconds: 1.5,
            runAt: 10,
            createdAt: 9,
            updatedAt: 11,
            result: nil,
            error: nil,
            uniqueKey: nil,
            leaseToken: "secret",
            leaseExpiresAt: 99,
            version: 2
        )
        let plain = try #require(try JSONSerialization.jsonObject(with: JobJSON.encode(job)) as? [String: Any])
        #expect(plain["type"] as? String == "quote\"and\\slash\n\u{1}")
        #expect((plain["input"] as? [String: Any])?["k"] as? [Int] == [1, 2])
        #expect(plain["lease"] == nil && plain["result"] == nil)
        let claimed = try #require(
            try JSONSerialization.jsonObject(with: JobJSON.encode(job, withLease: true)) as? [String: Any]
        )
        #expect((claimed["lease"] as? [String: Any])?["token"] as? String == "secret")
    }
}
