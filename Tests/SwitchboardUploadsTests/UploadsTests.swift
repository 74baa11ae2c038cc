import Foundation
import Logging
import NIOCore
import SwitchboardBroker
import SwitchboardJobs
import SwitchboardSQLite
import SwitchboardStore
import Testing

@testable import SwitchboardStore
@testable import SwitchboardUploads

/// Uploads over a real SQLite store and real files in a temporary directory.
@Suite struct UploadsTests {
    let uploads: Uploads
    let broker: Broker
    /// The time uploads expire by, moved by the tests.
    let clock = ManualWallClock()

    init() throws {
        try self.init(expiry: .seconds(60))
    }

    init(expiry: Duration) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("uploads-\(UUID().uuidString)")
        let store = try SQLiteStore(directory: directory.path)
        broker = Broker(store: store)
        let jobs = Jobs(store: store, broker: broker, logger: Logger(label: "test"))
        var configuration = Uploads.Configuration()
        configuration.expiry = expiry
        uploads = try Uploads(
            store: store,
            directory: directory.appendingPathComponent("uploads").path,
            broker: broker,
            jobs: jobs,
            jobTypes: ["sha256"],
            configuration: configuration,
            clock: clock,
            logger: Logger(label: "test")
        )
    }

    private func body(_ pieces: String...) -> AsyncThrowingStream<ByteBuffer, any Error> {
        AsyncThrowingStream { continuation in
            for piece in pieces { continuation.yield(ByteBuffer(string: piece)) }
            continuation.finish()
        }
    }

    @Test func metadataIsParsedAndMalformedMetadataRefused() {
        let metadata = UploadMetadata(header: "filename bmFtZS50eHQ=,is_confidential")
        #expect(metadata?["filename"] == "name.txt" && metadata?["is_confidential"] == "")
        #expect(UploadMetadata(header: "filename not-base64!") == nil)
        #expect(UploadMetadata(header: "a YQ==,a YQ==") == nil)
    }

    @Test func checksumsNameTheirAlgorithm() throws {
        #expect(try UploadChecksum(header: "sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=").algorithm == .sha1)
        #expect(throws: UploadChecksum.Problem.unsupportedAlgorithm) { try UploadChecksum(header: "crc32 AAAA") }
        #expect(throws: UploadChecksum.Problem.malformed) { try UploadChecksum(header: "sha1") }
    }

    @Test func bytesAppendInOrderAndAFinishedUploadIsAnnounced() async throws {
        let upload = try await uploads.create(length: 6, metadata: "")
        let half = try await uploads.append(id: upload.id, at: 0, declaredLength: nil, checksum: nil, body: body("abc"))
        #expect(half.offset == 3 && !half.isComplete)
        await #expect(throws: UploadError.offsetMismatch(3)) {
            try await uploads.append(id: upload.id, at: 0, declaredLength: nil, checksum: nil, body: body("x"))
        }
        let done = try await uploads.append(
            id: upload.id,
            at: 3,
            declaredLength: nil,
            checksum: nil,
            body: body("d", "ef")
        )
        #expect(done.isComplete)
        #expect(try String(contentsOfFile: uploads.path(of: upload.id), encoding: .utf8) == "abcdef")
        let announced = try await broker.read(topic: Uploads.topic, after: 0, limit: 10).messages
        #expect(announced.count == 1 && String(decoding: announced[0].body, as: UTF8.self).contains(upload.id))
    }

    @Test func aChecksumMismatchDiscardsTheBody() async throws {
        let upload = try await uploads.create(length: 3, metadata: "")
        let wrong = try UploadChecksum(header: "sha256 \(Data(repeating: 0, count: 32).base64EncodedString())")
        await #expect(throws: UploadError.checksumMismatch) {
            try await uploads.append(id: upload.id, at: 0, declaredLength: nil, checksum: wrong, body: body("abc"))
        }
        #expect(try await uploads.upload(id: upload.id).offset == 0)
    }

    @Test func unfinishedUploadsExpireAndAreRemoved() async throws {
        let fixture = try UploadsTests(expiry: .seconds(3600))
        let uploads = fixture.uploads
        let upload = try await uploads.create(length: 10, metadata: "")
        #expect(try await uploads.removeExpired() == 0)
        fixture.clock.advance(by: .seconds(3601))
        await #expect(throws: UploadError.gone) { try await uploads.upload(id: upload.id) }
        #expect(try await uploads.removeExpired() == 1)
        await #expect(throws: UploadError.notFound) { try await uploads.upload(id: upload.id) }
        #expect(!FileManager.default.fileExists(atPath: uploads.path(of: upload.id)))
    }

    @Test func metadataMayOnlyNameKnownJobs() async throws {
        await #expect(throws: UploadError.self) {
            try await uploads.create(length: 1, metadata: "job \(Data("rm -rf".utf8).base64EncodedString())")
        }
    }
}
