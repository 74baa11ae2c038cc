import NIOCore
import NIOHTTP2
import NIOSSL

/// Everything the engine needs to listen and to protect itself; every field has a documented default.
public struct EngineConfiguration: Sendable {
    /// Host to bind. Default `127.0.0.1`.
    public var host: String = "127.0.0.1"
    /// Port to bind; 0 picks a free port, reported through `HTTPServer.onListening`. Default 8080.
    public var port: Int = 8080
    /// How listeners and connections map onto event loops. Default `.sharedListener`.
    public var executionModel: ExecutionModel = .sharedListener
    /// Event loops (threads) for network I/O; ignored by `.single`. Default: one per core.
    public var eventLoops: Int = System.coreCount
    /// Length of the kernel's accept queue. Default 1024.
    public var backlog: Int = 1024
    /// `TCP_NODELAY` on accepted sockets; `false` switches Nagle's algorithm back on. Default `true`.
    public var tcpNoDelay: Bool = true
    /// `TCP_FASTOPEN` queue length on the listener; `nil` leaves TCP Fast Open off. Default `nil`.
    public var tcpFastOpenQueue: Int? = nil
    /// Request size, time and connection limits.
    public var limits: HTTPLimits = HTTPLimits()
    /// Web origins whose pages may read responses (CORS). Default: none.
    public var crossOrigin = CrossOriginPolicy()
    /// How long graceful shutdown waits for requests in flight before closing their connections.
    public var drainTimeout: TimeAmount = .seconds(10)
    /// A second listener that terminates TLS; `nil` for none. Default `nil`.
    public var tls: TLSListener?
    /// Whether the cleartext listener on `host`:`port` is bound; `false` serves TLS only. Default `true`.
    public var servesCleartext = true
    /// HTTP/2 on the TLS listener (ALPN `h2`) and, with prior knowledge, on the cleartext one.
    public var http2 = HTTP2Configuration()
    /// What the listeners serve, as `/v1/connections` names them. Default `http`.
    public var name = "http"

    public init() {}
}

/// Where TLS is served and with which certificate: TLS 1.2 and 1.3 only, BoringSSL's modern cipher
/// suites, ALPN `h2` then `http/1.1`.
public struct TLSListener: Sendable {
    public var host: String
    public var port: Int
    public var certificateChain: [NIOSSLCertificate]
    public var privateKey: NIOSSLPrivateKey

    public init(host: String, port: Int, certificateChain: [NIOSSLCertificate], privateKey: NIOSSLPrivateKey) {
        self.host = host
        self.port = port
        self.certificateChain = certificateChain
        self.privateKey = privateKey
    }

    /// A server context with this certificate, TLS 1.2 or later, offering `applicationProtocols` by ALPN.
    public func makeContext(applicationProtocols: [String] = ["h2", "http/1.1"]) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: certificateChain.map { .certificate($0) },
            privateKey: .privateKey(privateKey)
        )
        configuration.minimumTLSVersion = .tlsv12
        configuration.applicationProtocols = applicationProtocols
        return try NIOSSLContext(configuration: configuration)
    }
}

/// Limits that keep malformed, oversized and slow clients from hurting the server.
public struct HTTPLimits: Sendable {
    /// Bytes of header names and values in one request; over it the answer is 431. Default 16 KiB.
    public var maxHeaderBytes: Int = 16 * 1024
    /// Body bytes a route accepts unless it says otherwise; over it the answer is 413. Default 1 MiB.
    public var maxBodyBytes: Int = 1024 * 1024
    /// Time from a request's first byte to its complete head; over it 408 and close (slowloris). Default 10 s.
    public var headerReadTimeout: TimeAmount = .seconds(10)
    /// Time a keep-alive connection may sit with no request before it is closed. Default 60 s.
    public var idleTimeout: TimeAmount = .seconds(60)
    /// Open connections at once; at the limit the listener stops accepting until one closes. Default 10000.
    public var maxConnections: Int = 10_000

    public init() {}
}

/// HTTP/2's settings and the limits that protect the server from abusive peers.
public struct HTTP2Configuration: Sendable {
    /// Accept HTTP/2 with prior knowledge (h2c) on the cleartext listener. Default `true`.
    public var cleartext = true
    /// Streams a client may have open at once (`SETTINGS_MAX_CONCURRENT_STREAMS`); a client that opens
    /// more breaks the protocol and gets `GOAWAY` `PROTOCOL_ERROR`. Default 100.
    public var maxConcurrentStreams = 100
    /// Bytes a client may send on one stream before the server opens its window further
    /// (`SETTINGS_INITIAL_WINDOW_SIZE`). Default 65535, the protocol's default.
    public var streamWindowSize = 65535
    /// Bytes a client may send on the whole connection before a `WINDOW_UPDATE`. Default 1 MiB.
    public var connectionWindowSize = 1024 * 1024
    /// Size of the HPACK dynamic table the server keeps for decoding (`SETTINGS_HEADER_TABLE_SIZE`).
    /// Default 4096, the protocol's default.
    public var headerTableSize = 4096
    /// `RST_STREAM` frames a client may send within `resetWindow` before the connection is closed with
    /// `ENHANCE_YOUR_CALM` (the rapid reset attack, CVE-2023-44487). Default 200 per 30 s.
    public var maxResets = 200
    public var resetWindow: TimeAmount = .seconds(30)

    public init() {}

    /// The handler's configuration; `maxHeaderListSize` is the same head limit HTTP/1.1 has.
    func handlerConfiguration(maxHeaderListSize: Int) -> NIOHTTP2Handler.Configuration {
        var configuration = NIOHTTP2Handler.Configuration()
        configuration.connection.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: maxConcurrentStreams),
            HTTP2Setting(parameter: .initialWindowSize, value: streamWindowSize),
            HTTP2Setting(parameter: .headerTableSize, value: headerTableSize),
            HTTP2Setting(parameter: .maxHeaderListSize, value: maxHeaderListSize),
        ]
        configuration.connection.targetWindowSize = connectionWindowSize
        configuration.stream.targetWindowSize = streamWindowSize
        configuration.stream.streamResetFrameRateLimit.maximumCount = maxResets
        configuration.stream.streamResetFrameRateLimit.windowLength = resetWindow
        return configuration
    }
}
