import NIOHTTP1

/// Which web origins may read responses from a browser (CORS, the Fetch standard): listed origins, or
/// all with `*`. An allowed request's response gets `Access-Control-Allow-Origin`; preflights are not
/// needed for what browsers send here (EventSource, simple GETs and POSTs).
public struct CrossOriginPolicy: Sendable, Equatable {
    public var allowedOrigins: Set<String>

    public init(allowedOrigins: Set<String> = []) {
        self.allowedOrigins = allowedOrigins
    }

    /// Adds the CORS headers to `headers` when the request's `Origin` is allowed.
    func apply(request: HTTPRequestHead, to headers: inout HTTPHeaders) {
        guard !allowedOrigins.isEmpty, let origin = request.headers.first(name: "origin") else { return }
        if allowedOrigins.contains("*") {
            headers.replaceOrAdd(name: "Access-Control-Allow-Origin", value: "*")
        } else if allowedOrigins.contains(origin) {
            headers.replaceOrAdd(name: "Access-Control-Allow-Origin", value: origin)
            headers.add(name: "Vary", value: "Origin")
        }
    }
}
