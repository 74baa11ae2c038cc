import Foundation
import NIOCore
import NIOHTTP1
import SwitchboardEngine
import Testing

@testable import SwitchboardEdge

@Suite struct EdgeConfigurationTests {
    private func load(_ yaml: String) throws -> EdgeConfiguration {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("edge-\(UUID()).yaml").path
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try EdgeConfiguration.load(path: path)
    }

    private func problems(_ yaml: String) -> [String] {
        do {
            _ = try load(yaml)
            return []
        } catch let error as EdgeConfigurationError {
            return error.problems
        } catch {
            return ["\(error)"]
        }
    }

    @Test func aValidFileLoads() throws {
        let configuration = try load(
            """
            listeners:
              - {name: web, kind: http, listen: "127.0.0.1:0", routes: [{pathPrefix: /api, cluster: api}]}
              - {name: db, kind: tcp, listen: "127.0.0.1:0", cluster: api, proxyProtocol: v2}
              - {name: out, kind: forward, listen: "127.0.0.1:0", access: {ports: [443], allowNetworks: [127.0.0.0/8]}}
            clusters:
              - name: api
                balance: hash
                hashOn: {header: X-User}
                upstreams: [{address: "127.0.0.1:9001", weight: 2}, {address: "127.0.0.1:9002"}]
                healthCheck: {path: /healthz, interval: 1s}
            """
        )
        #expect(configuration.listeners.map(\.kind) == [.http, .tcp, .forward])
        #expect(configuration.clusters?.first?.upstreams.count == 2)
    }

    @Test func everyMistakeIsOneLineNamingItsSetting() {
        let found = problems(
            """
            listeners:
              - {name: web, kind: http, listen: "nowhere", routes: [{pathPrefix: api, cluster: missing}]}
              - {name: web, kind: tcp, listen: "127.0.0.1:0", proxyProtocol: v3}
            clusters:
              - name: api
                balance: random
                upstreams: [{address: "127.0.0.1", weight: 0}]
                healthCheck: {interval: soon}
                retries: {budget: 2}
            """
        )
        let expected = [
            "listeners[0].listen: expected HOST:PORT, got 'nowhere'",
            "listeners[0].routes[0].cluster: no cluster is named missing",
            "listeners[0].routes[0].pathPrefix: must start with /, got 'api'",
            "listeners[1].cluster: a tcp listener needs a cluster",
            "listeners[1].proxyProtocol: expected v1 or v2, got 'v3'",
            "listeners: the name web is used 2 times",
            "clusters[0].upstreams[0].address: expected HOST:PORT, got '127.0.0.1'",
            "clusters[0].upstreams[0].weight: expected 1 to 1000, got 0",
            "clusters[0].balance: expected round-robin, weighted, least-connections, power-of-two or hash, got 'random'",
            "clusters[0].healthCheck.interval: expected a duration such as 2s, got 'soon'",
            "clusters[0].retries.budget: expected a share from 0 to 1, got 2.0",
        ]
        #expect(found == expected)
    }

    @Test func missingAndMistypedFieldsNameTheirPlace() {
        #expect(problems("listeners:\n  - {kind: http, listen: x}\n") == ["listeners[0].name: is required"])
        #expect(
            problems("listeners:\n  - {name: a, kind: udp, listen: x}\n").first?.hasPrefix("listeners[0].kind") == true
        )
    }
}

@Suite struct EdgeProtocolTests {
    @Test func internalNetworksAreKnown() throws {
        func address(_ ip: String) throws -> SocketAddress { try SocketAddress(ipAddress: ip, port: 80) }
        let isInternal = { (ip: String) in try IPNetwork.nonPublic.contains { $0.contains(try address(ip)) } }
        for ip in [
            "127.0.0.1", "10.1.2.3", "172.20.0.1", "192.168.1.1", "169.254.169.254", "::1", "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            #expect(try isInternal(ip), "\(ip)")
        }
        for ip in ["93.184.216.34", "172.32.0.1", "2001:db8::1", "8.8.8.8"] {
            #expect(try !isInternal(ip), "\(ip)")
        }
        #expect(IPNetwork("10.0.0.0/33") == nil && IPNetwork("nonsense") == nil)
    }

    @Test func proxyProtocolHeaders() throws {
        let source = try SocketAddress(ipAddress: "192.0.2.1", port: 56324)
        let destination = try SocketAddress(ipAddress: "198.51.100.2", port: 443)
        var v1 = ProxyProtocolHeader.make(.v1, source: source, destination: destination)
        #expect(v1.readString(length: v1.readableBytes) == "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n")
        let v2 = ProxyProtocolHeader.make(.v2, source: source, destination: destination)
        let bytes = Array(v2.readableBytesView)
        #expect(bytes.count == 16 + 12)
        #expect(bytes[12] == 0x21 && bytes[13] == 0x11 && bytes[14] == 0 && bytes[15] == 12)
        #expect(Array(bytes[16..<20]) == [192, 0, 2, 1] && Array(bytes[20..<24]) == [198, 51, 100, 2])
        #expect(Array(bytes[24..<28]) == [0xDC, 0x04, 0x01, 0xBB])
    }

    @Test func forwardingHeadersReplaceUntrustedOnesAndAppendToTrustedOnes() throws {
        let client = try SocketAddress(ipAddress: "203.0.113.7", port: 1000)
        var headers: HTTPHeaders = [
            "Host": "shop.example", "X-Forwarded-For": "1.2.3.4", "Connection": "keep-alive, X-Secret",
            "X-Secret": "s", "Keep-Alive": "timeout=5",
        ]
        headers = ProxyHeaders.removingHopByHop(headers)
        #expect(!headers.contains(name: "x-secret") && !headers.contains(name: "keep-alive"))
        var untrusted = headers
        ProxyHeaders.addForwarding(to: &untrusted, client: client, scheme: "https", trustIncoming: false)
        #expect(untrusted["X-Forwarded-For"] == ["203.0.113.7"])
        #expect(untrusted["X-Forwarded-Proto"] == ["https"] && untrusted["X-Forwarded-Host"] == ["shop.example"])
        #expect(untrusted["Forwarded"] == [#"for=203.0.113.7;proto=https;host="shop.example""#])
        var trusted = headers
        ProxyHeaders.addForwarding(to: &trusted, client: client, scheme: "http", trustIncoming: true)
        #expect(trusted["X-Forwarded-For"] == ["1.2.3.4, 203.0.113.7"])
    }
}

@Suite struct EdgeExampleTests {
    @Test(arguments: ["edge-http.yaml", "edge-tcp.yaml", "edge-forward.yaml"])
    func everyExampleIsValid(name: String) throws {
        let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../examples").standardized
        let configuration = try EdgeConfiguration.load(path: examples.appendingPathComponent(name).path)
        #expect(!configuration.listeners.isEmpty)
    }
}
