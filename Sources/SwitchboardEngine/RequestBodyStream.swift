import NIOCore

/// A request body handed to its handler while it arrives, chunk by chunk. Reading is flow-controlled:
/// when the handler falls behind, the connection stops reading from the socket until it catches up, so
/// memory stays flat however large the body. Iteration throws `RequestBodyStream.ClientGone` when the
/// connection closes before the body ends.
public struct RequestBodyStream: AsyncSequence, Sendable {
    public typealias Element = ByteBuffer
    typealias Producer = NIOThrowingAsyncSequenceProducer<
        ByteBuffer, any Error, NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark, Demand
    >

    /// The connection closed before the body ended.
    public struct ClientGone: Error {}

    let producer: Producer

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: Producer.AsyncIterator

        public mutating func next() async throws -> ByteBuffer? {
            try await base.next()
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: producer.makeAsyncIterator())
    }

    /// A stream and the source the connection feeds; `resume` runs when the handler wants more.
    static func make(resume: @escaping @Sendable () -> Void) -> (RequestBodyStream, Producer.Source) {
        let made = Producer.makeSequence(
            backPressureStrategy: .init(lowWatermark: 4, highWatermark: 16),
            finishOnDeinit: false,
            delegate: Demand(resume: resume)
        )
        return (RequestBodyStream(producer: made.sequence), made.source)
    }

    /// Tells the connection to read again once the handler has room.
    struct Demand: NIOAsyncSequenceProducerDelegate {
        let resume: @Sendable () -> Void

        func produceMore() {
            resume()
        }

        func didTerminate() {
            resume()
        }
    }
}
