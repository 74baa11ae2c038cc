import NIOCore
import SwitchboardHTTP1

/// Feeds `bytes` to the HTTP/1.1 request parser whole and again in two pieces, split where the first
/// byte says; the parser must never crash or loop, and both runs must give the same parts and failure.
func checkHTTP1Parser(_ bytes: UnsafeRawBufferPointer) {
    guard let first = bytes.first else { return }
    let split = Int(first) * bytes.count / 256
    let whole = parse([bytes[...]])
    let pieces = parse([bytes[..<split], bytes[split...]])
    precondition(whole.parts == pieces.parts, "parts differ when the input is split at \(split)")
    precondition(whole.failure == pieces.failure, "failures differ when the input is split at \(split)")
}

private func parse(
    _ pieces: [Slice<UnsafeRawBufferPointer>]
) -> (parts: [HTTP1RequestParser.Part], failure: HTTP1RequestParser.Failure?) {
    var parser = HTTP1RequestParser(maxHeadBytes: 1024, maxFieldCount: 16)
    var buffer = ByteBuffer()
    var parts: [HTTP1RequestParser.Part] = []
    do {
        for piece in pieces {
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: piece))
            while let part = try parser.next(from: &buffer) {
                // Adjacent body slices are joined: how the bytes arrived must not matter.
                if case .body(var next) = part, case .body(var body)? = parts.last {
                    body.writeBuffer(&next)
                    parts[parts.count - 1] = .body(body)
                } else {
                    parts.append(part)
                }
            }
        }
    } catch {
        return (parts, error as? HTTP1RequestParser.Failure)
    }
    return (parts, nil)
}
