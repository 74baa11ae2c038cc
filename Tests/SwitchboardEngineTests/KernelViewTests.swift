import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import SwitchboardEngine

/// The kernel's view of the process's sockets, as `/proc` gives it.
@Suite struct KernelViewTests {
    @Test func addressesAreDecodedFromProcHex() {
        #expect(KernelView.address("0100007F:1F90") == "127.0.0.1:8080")
        #expect(KernelView.address("00000000000000000000000001000000:0050") == "[0:0:0:0:0:0:0:1]:80")
    }

    @Test func aListenerOfThisProcessIsSeenWithItsAcceptQueue() throws {
        #if os(Linux)
            let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(listener) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            #expect(bound == 0)
            #expect(listen(listener, 77) == 0)
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
            }
            let port = Int(UInt16(bigEndian: address.sin_port))
            // Enough other sockets first that the table runs past 4 KiB, where a careless read stops.
            let others = (0..<100).map { _ in socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0) }
            defer { others.forEach { close($0) } }
            for other in others {
                var any = sockaddr_in()
                any.sin_family = sa_family_t(AF_INET)
                any.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
                _ = withUnsafePointer(to: &any) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        bind(other, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
                _ = listen(other, 1)
            }
            let view = KernelView.read()
            let mine = try #require(view.listeners.first { $0.address == "127.0.0.1:\(port)" })
            #expect(mine.acceptQueue == 0)
            #expect(view.listeners.count >= 101)
            #expect(view.listenOverflows != nil && view.maximumBacklog != nil)
        #endif
    }
}

/// Socket options the listeners give accepted connections, read back from the accepted socket.
@Suite struct ListeningSocketOptionsTests {
    @Test(arguments: [true, false]) func nagleIsOffUnlessAskedFor(noDelay: Bool) async throws {
        var options = ListeningSockets.Options()
        options.tcpNoDelay = noDelay
        let (accepted, continuation) = AsyncStream.makeStream(of: Int.self)
        let sockets = try await ListeningSockets(
            executionModel: .sharedListener,
            group: MultiThreadedEventLoopGroup.singleton,
            options: options
        ).bind(host: "127.0.0.1", port: 0) { channel in
            channel.eventLoop.makeCompletedFuture {
                continuation.yield(try channel.syncOptions!.getOption(.tcpOption(.tcp_nodelay)))
            }
        }
        let connection = try await RawConnection.connect(port: sockets.address.port!)
        var values = accepted.makeAsyncIterator()
        #expect(await values.next() == (noDelay ? 1 : 0))
        await connection.close()
        await sockets.drain(timeout: TimeAmount.seconds(1))
    }
}
