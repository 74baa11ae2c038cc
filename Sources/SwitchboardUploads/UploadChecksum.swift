import Crypto
import Foundation
import NIOCore

/// The `Upload-Checksum` header of the tus checksum extension: an algorithm and the base64 digest of the
/// body of the request that carries it.
public struct UploadChecksum: Sendable {
    public enum Algorithm: String, Sendable, CaseIterable {
        case sha1, sha256, md5

        func hasher() -> any HashFunction {
            switch self {
            case .sha1: Insecure.SHA1()
            case .sha256: SHA256()
            case .md5: Insecure.MD5()
            }
        }
    }

    public var algorithm: Algorithm
    public var digest: Data

    public enum Problem: Error {
        case malformed
        case unsupportedAlgorithm
    }

    public init(header: String) throws(Problem) {
        let parts = header.split(separator: " ")
        guard parts.count == 2, let digest = Data(base64Encoded: String(parts[1])) else { throw .malformed }
        guard let algorithm = Algorithm(rawValue: parts[0].lowercased()) else { throw .unsupportedAlgorithm }
        self.algorithm = algorithm
        self.digest = digest
    }
}

/// Hashes a body as it passes, for comparison with its `Upload-Checksum`.
struct ChecksumVerifier {
    let expected: UploadChecksum
    private var hasher: any HashFunction

    init(_ expected: UploadChecksum) {
        self.expected = expected
        self.hasher = expected.algorithm.hasher()
    }

    mutating func update(_ chunk: ByteBuffer) {
        chunk.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
    }

    func matches() -> Bool {
        Data(hasher.finalize()) == expected.digest
    }
}
