/// Every setting of `switchboard serve`. Each is a flag (`--listen`), an environment variable
/// (`SWITCHBOARD_LISTEN`) and a config-file key (`listen:`), in that order of precedence.
public enum ServeSetting: String, CaseIterable, Sendable {
    case listen
    case data
    case store
    case uploadsDir = "uploads-dir"
    case executionModel = "execution-model"
    case eventLoops = "event-loops"
    case backlog
    case tcpNoDelay = "tcp-nodelay"
    case tcpFastOpen = "tcp-fast-open"
    case maxHeaderBytes = "max-header-bytes"
    case maxBodyBytes = "max-body-bytes"
    case headerReadTimeout = "header-read-timeout"
    case idleTimeout = "idle-timeout"
    case maxConnections = "max-connections"
    case drainTimeout = "drain-timeout"
    case workerThreads = "worker-threads"
    case logLevel = "log-level"
    case accessLog = "access-log"
    case durability
    case maxMessageBytes = "max-message-bytes"
    case retentionMessages = "retention-messages"
    case retentionAge = "retention-age"
    case topicRetention = "topic-retention"
    case sseHeartbeat = "sse-heartbeat"
    case corsOrigins = "cors-origins"
    case tlsListen = "tls-listen"
    case tlsCert = "tls-cert"
    case tlsKey = "tls-key"
    case tlsSelfSigned = "tls-self-signed"
    case h2c
    case grpcListen = "grpc-listen"
    case grpcTLSListen = "grpc-tls-listen"
    case grpcKeepalive = "grpc-keepalive"
    case grpcInterop = "grpc-interop"
    case stunListen = "stun-listen"
    case turnTLSListen = "turn-tls-listen"
    case turnSecret = "turn-secret"
    case turnUsers = "turn-users"
    case turnRealm = "turn-realm"
    case turnRelayAddress = "turn-relay-address"
    case turnRelayPorts = "turn-relay-ports"
    case turnAllowedPeers = "turn-allowed-peers"
    case turnMaxAllocations = "turn-max-allocations"
    case turnUserQuota = "turn-user-quota"
    case turnMaxBandwidth = "turn-max-bandwidth"
    case turnCredentialTTL = "turn-credential-ttl"
    case rtcMaxPeers = "rtc-max-peers"
    case http2MaxStreams = "http2-max-streams"
    case http2StreamWindow = "http2-stream-window"
    case http2ConnectionWindow = "http2-connection-window"
    case http2HeaderTable = "http2-header-table"
    case http2MaxResets = "http2-max-resets"
    case jobQueues = "job-queues"
    case jobLease = "job-lease"
    case jobRetention = "job-retention"
    case idempotencyRetention = "idempotency-retention"
    case uploadMaxSize = "upload-max-size"
    case uploadExpiry = "upload-expiry"
    case jwtSecret = "jwt-secret"
    case jwtPublicKey = "jwt-public-key"
    case jwks
    case jwtIssuer = "jwt-issuer"
    case jwtAudience = "jwt-audience"

    /// One line for `--help`, with the default.
    public var help: String {
        switch self {
        case .listen: "Address to listen on, HOST:PORT; port 0 picks a free port (default 127.0.0.1:8080)."
        case .data: "Directory of the embedded SQLite store (default ./switchboard-data)."
        case .store:
            "sqlite (one node, in DATA) or postgres://USER:PASSWORD@HOST:PORT/DATABASE, shared by several nodes "
                + "(default sqlite)."
        case .uploadsDir: "Directory of upload bytes; shared storage when nodes share a store (default DATA/uploads)."
        case .executionModel: "single, shared-listener or reuseport (default shared-listener)."
        case .eventLoops: "Event loops (threads) for network I/O (default: one per core)."
        case .backlog: "Length of the kernel's accept queue (default 1024)."
        case .tcpNoDelay: "TCP_NODELAY on accepted sockets; off switches Nagle's algorithm on (default on)."
        case .tcpFastOpen: "TCP Fast Open queue length on the listener; 0 is off (default 0)."
        case .maxHeaderBytes: "Largest request head, e.g. 16KiB; over it 431 (default 16KiB)."
        case .maxBodyBytes: "Largest request body of routes that set none, e.g. 1MiB; over it 413 (default 1MiB)."
        case .headerReadTimeout: "Time to receive a request head once it begins, e.g. 10s; then 408 (default 10s)."
        case .idleTimeout:
            "Time a keep-alive connection may wait for its next request; a WebSocket silent this long is pinged, "
                + "and closed after as long again (default 60s)."
        case .maxConnections: "Open connections at once; at the limit new ones wait in the backlog (default 10000)."
        case .drainTimeout: "On shutdown, time requests in flight get to finish (default 10s)."
        case .workerThreads: "Threads of the worker pool for CPU-heavy work (default: one per core)."
        case .logLevel: "trace, debug, info, notice, warning, error or critical (default info)."
        case .accessLog: "One log line per request, on or off (default on)."
        case .durability: "process (survives kill -9) or power (fsync per commit) (default process)."
        case .maxMessageBytes: "Largest topic message, e.g. 1MiB; over it 413 (default 1MiB)."
        case .retentionMessages: "Messages each topic keeps; 0 keeps all (default 1000000)."
        case .retentionAge: "How long topics keep messages, e.g. 7d as 168h; 0 keeps them (default 168h)."
        case .topicRetention:
            "Per-topic retention, TOPIC=MESSAGES/AGE[,…], e.g. audit=0/720h,chat=1000/ (default none)."
        case .sseHeartbeat: "Interval of SSE heartbeat comments (default 15s)."
        case .corsOrigins: "Comma-separated web origins whose pages may read responses, or * (default none)."
        case .tlsListen: "Address of the TLS listener, HOST:PORT (default 127.0.0.1:8443, once a certificate is set)."
        case .tlsCert: "PEM file of the TLS certificate, with its chain."
        case .tlsKey: "PEM file of the TLS private key."
        case .tlsSelfSigned:
            "on: serve TLS with a development certificate for localhost, kept under DATA/tls (default off)."
        case .grpcListen: "Address of the gRPC listener (h2c), HOST:PORT, or off (default 127.0.0.1:50051)."
        case .grpcTLSListen:
            "Address of the gRPC TLS listener, HOST:PORT (default 127.0.0.1:50052, once a certificate is set)."
        case .grpcKeepalive:
            "Idle time after which gRPC connections are pinged; unanswered for 20s, closed (default 2h)."
        case .grpcInterop: "Serve grpc.testing.TestService for gRPC interop clients, on or off (default off)."
        case .stunListen:
            "Address of the STUN/TURN server (UDP and TCP), HOST:PORT, or off (default 127.0.0.1:3478)."
        case .turnTLSListen:
            "Address of STUN/TURN over TLS (turns:), HOST:PORT, or off (default 127.0.0.1:5349, once a certificate is set)."
        case .turnSecret:
            "TURN REST API secret: TURN on, with time-limited credentials from /v1/rtc/ice-servers (default off)."
        case .turnUsers: "File of TURN users, a USER:PASSWORD per line: TURN on with long-term credentials."
        case .turnRealm: "The TURN realm (default switchboard)."
        case .turnRelayAddress: "IP address relay sockets bind to and clients are told (default: the STUN host)."
        case .turnRelayPorts: "Ports of relay sockets, LOW-HIGH (default 49152-65535)."
        case .turnAllowedPeers:
            "Non-public networks the relay may reach anyway, CIDR[,…], e.g. 127.0.0.0/8 for tests (default none)."
        case .turnMaxAllocations: "TURN allocations at once; beyond, 486 (default 10000)."
        case .turnUserQuota: "TURN allocations at once per username; beyond, 486 (default 1000)."
        case .turnMaxBandwidth: "Bytes a second one allocation may relay, e.g. 1MiB; 0 is no cap (default 0)."
        case .turnCredentialTTL: "How long TURN credentials from /v1/rtc/ice-servers last (default 1h)."
        case .rtcMaxPeers: "Peers in one signaling room at once (default 16)."
        case .h2c: "HTTP/2 with prior knowledge on the cleartext listener, on or off (default on)."
        case .http2MaxStreams: "HTTP/2 streams a client may have open at once (default 100)."
        case .http2StreamWindow: "HTTP/2 flow-control window of each stream, e.g. 64KiB (default 65535)."
        case .http2ConnectionWindow: "HTTP/2 flow-control window of each connection (default 1MiB)."
        case .http2HeaderTable: "HPACK dynamic table size the server decodes with (default 4096)."
        case .http2MaxResets:
            "Stream resets a client may send in 30 s before its connection is closed (rapid reset) (default 200)."
        case .jobQueues:
            "Queues the built-in workers serve, QUEUE=CONCURRENCY[,…]; other queues are for external workers "
                + "(default default=4)."
        case .jobLease: "The lease of a claimed job unless the worker asks for another (default 30s)."
        case .jobRetention: "How long finished jobs and their events are kept (default 168h)."
        case .idempotencyRetention: "How long Idempotency-Key answers are kept (default 24h)."
        case .uploadMaxSize: "Largest upload, e.g. 10GiB; advertised as Tus-Max-Size (default 10GiB)."
        case .uploadExpiry: "How long an unfinished upload is kept after its last change (default 24h)."
        case .jwtSecret:
            "HS256 secret of 32 bytes or more; with any JWT key set, every request needs a bearer token (default off)."
        case .jwtPublicKey: "PEM file of an RSA (RS256) or P-256 (ES256) public key that signs tokens."
        case .jwks: "JWKS file of the keys that sign tokens."
        case .jwtIssuer: "The iss claim tokens must carry (default: not checked)."
        case .jwtAudience: "An aud claim tokens must include (default: not checked)."
        }
    }

    /// Settings that take several values: comma-separated on the command line and in the environment,
    /// a list in the config file.
    public var isList: Bool { self == .topicRetention || self == .jobQueues || self == .turnAllowedPeers }
}
