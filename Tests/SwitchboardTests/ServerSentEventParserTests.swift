import SwitchboardClient
import Testing

@Suite struct ServerSentEventParserTests {
    @Test func foldsLinesIntoEventsAndSkipsComments() {
        var parser = ServerSentEventParser()
        let lines = [
            "retry: 2000", "", ": heartbeat", "", "id: 7", "data: two", "data:lines", "", "event: trimmed", "data: {}",
            "",
        ]
        let events = lines.compactMap { parser.consume(line: $0) }
        #expect(
            events == [
                ServerSentEvent(id: "7", event: nil, data: "two\nlines"),
                ServerSentEvent(id: "7", event: "trimmed", data: "{}"),
            ]
        )
    }
}
