extension ConnectionTimeoutHandler {
    /// Which timer a connection needs, from what it has seen; tested without sockets.
    struct StateMachine {
        enum Timer: Equatable {
            /// Nothing armed: a request is being handled (handlers such as long polls may take long).
            case none
            /// Waiting for a new request with no byte of it yet: close quietly when it fires.
            case idle
            /// Some bytes of a request head arrived: answer 408 and close when it fires.
            case headerRead
        }

        private(set) var timer: Timer = .idle
        /// Requests whose head arrived and whose response has not ended.
        private var requestsInFlight = 0
        /// Bytes of a head not yet complete have arrived.
        private var partialHead = false

        /// The first byte of a new request arrived.
        mutating func requestBytesArrived() -> Timer {
            partialHead = true
            return update()
        }

        /// A request head was parsed.
        mutating func headReceived() -> Timer {
            partialHead = false
            requestsInFlight += 1
            return update()
        }

        /// The end of a response was written.
        mutating func responseEnded() -> Timer {
            requestsInFlight = max(0, requestsInFlight - 1)
            return update()
        }

        private mutating func update() -> Timer {
            if requestsInFlight > 0 {
                timer = .none
            } else {
                timer = partialHead ? .headerRead : .idle
            }
            return timer
        }
    }
}
