import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// What the kernel knows of this process's TCP sockets (Linux, from `/proc` and `TCP_INFO`): each
/// listening socket's accept queue, the cap on backlogs, the host's listen overflow and drop counters, and
/// round-trip time, congestion window and retransmissions of a sample of open connections. Elsewhere it
/// is empty.
public struct KernelView: Sendable {
    public struct Listener: Sendable {
        public var address: String
        public var port: Int
        /// Connections the kernel completed that the server has not accepted yet.
        public var acceptQueue: Int
    }

    public struct Connection: Sendable {
        public var local: String
        public var peer: String
        public var rttMicroseconds: UInt32
        public var rttVarianceMicroseconds: UInt32
        /// The congestion window, in segments.
        public var congestionWindow: UInt32
        /// Segments sent and not yet acknowledged.
        public var unacknowledged: UInt32
        public var totalRetransmissions: UInt32
    }

    public var listeners: [Listener] = []
    /// `net.core.somaxconn`: the kernel caps every listen backlog at it.
    public var maximumBacklog: Int?
    /// Handshakes dropped because an accept queue was full, since boot (host-wide `TcpExt`).
    public var listenOverflows: Int64?
    /// Incoming connections dropped at listen for any reason, since boot (host-wide `TcpExt`).
    public var listenDrops: Int64?
    /// Established connections of this process.
    public var establishedConnections = 0
    /// Up to the sample size of them, with their `TCP_INFO`.
    public var connections: [Connection] = []

    /// Reads it now, describing at most `connectionSample` connections.
    public static func read(connectionSample: Int = 20) -> KernelView {
        var view = KernelView()
        let sockets = socketInodes()
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            guard let text = procFile(table) else { continue }
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                guard fields.count > 9, let fd = sockets[String(fields[9])] else { continue }
                let queues = fields[4].split(separator: ":")
                switch fields[3] {
                case "0A":  // LISTEN: rx_queue is the accept queue.
                    view.listeners.append(
                        Listener(
                            address: address(fields[1]),
                            port: fields[1].split(separator: ":").last.flatMap { Int($0, radix: 16) } ?? 0,
                            acceptQueue: Int(queues.last ?? "0", radix: 16) ?? 0
                        )
                    )
                case "01":  // ESTABLISHED
                    view.establishedConnections += 1
                    if view.connections.count < connectionSample, let info = tcpInfo(fd) {
                        view.connections.append(
                            Connection(
                                local: address(fields[1]),
                                peer: address(fields[2]),
                                rttMicroseconds: info[15],
                                rttVarianceMicroseconds: info[16],
                                congestionWindow: info[18],
                                unacknowledged: info[4],
                                totalRetransmissions: info[23]
                            )
                        )
                    }
                default: break
                }
            }
        }
        view.maximumBacklog = procFile("/proc/sys/net/core/somaxconn")
            .flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        let counters = tcpExtCounters()
        view.listenOverflows = counters["ListenOverflows"]
        view.listenDrops = counters["ListenDrops"]
        return view
    }

    /// A `/proc` file read to its end. (`String(contentsOfFile:)` stops after the first 4 KiB of these
    /// files, whose size reads as 0: a busy host's `/proc/net/tcp` is far longer.)
    private static func procFile(_ path: String) -> String? {
        guard let file = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? file.close() }
        return (try? file.readToEnd()).map { String(decoding: $0 ?? Data(), as: UTF8.self) }
    }

    /// This process's sockets: inode to file descriptor.
    private static func socketInodes() -> [String: Int32] {
        var sockets: [String: Int32] = [:]
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return [:] }
        for entry in entries {
            guard let fd = Int32(entry),
                let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(entry)"),
                target.hasPrefix("socket:[")
            else { continue }
            sockets[String(target.dropFirst(8).dropLast())] = fd
        }
        return sockets
    }

    /// `struct tcp_info` as 32-bit words after its first 8 bytes of one-byte fields (the layout Linux keeps
    /// stable): 4 `unacked`, 15 `rtt`, 16 `rttvar`, 18 `snd_cwnd`, 23 `total_retrans`.
    private static func tcpInfo(_ fd: Int32) -> [UInt32]? {
        #if os(Linux)
            var buffer = [UInt8](repeating: 0, count: 232)
            var length = socklen_t(buffer.count)
            let tcpInfoOption: Int32 = 11  // TCP_INFO
            let result = buffer.withUnsafeMutableBytes { bytes in
                getsockopt(fd, Int32(IPPROTO_TCP), tcpInfoOption, bytes.baseAddress, &length)
            }
            guard result == 0, length >= 8 + 24 * 4 else { return nil }
            return (0..<24).map { index in
                buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 8 + index * 4, as: UInt32.self) }
            }
        #else
            return nil
        #endif
    }

    /// The `TcpExt` counters of `/proc/net/netstat`, by name.
    private static func tcpExtCounters() -> [String: Int64] {
        guard let text = procFile("/proc/net/netstat") else { return [:] }
        let lines = text.split(separator: "\n").filter { $0.hasPrefix("TcpExt:") }
        guard lines.count >= 2 else { return [:] }
        let names = lines[0].split(separator: " ").dropFirst()
        let values = lines[1].split(separator: " ").dropFirst()
        return Dictionary(zip(names.map(String.init), values.map { Int64($0) ?? 0 }), uniquingKeysWith: { a, _ in a })
    }

    /// `HOST:PORT` from `/proc/net/tcp`'s hex form: IPv4 as one little-endian word, IPv6 as four.
    static func address(_ field: Substring) -> String {
        let parts = field.split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1], radix: 16) else { return String(field) }
        let hex = Array(parts[0])
        var bytes: [UInt8] = []
        for word in stride(from: 0, to: hex.count, by: 8) where word + 8 <= hex.count {
            let value = UInt32(String(hex[word..<word + 8]), radix: 16) ?? 0
            bytes += [0, 8, 16, 24].map { UInt8(truncatingIfNeeded: value >> $0) }
        }
        if bytes.count == 4 {
            return "\(bytes.map(String.init).joined(separator: ".")):\(port)"
        }
        let groups = stride(from: 0, to: bytes.count, by: 2).map {
            String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16)
        }
        return "[\(groups.joined(separator: ":"))]:\(port)"
    }
}
