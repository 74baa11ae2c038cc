import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import SwitchboardBroker
import SwitchboardEngine
import SwitchboardJobs
import SwitchboardStore

/// Resumable uploads (tus 1.0): each upload's bytes stream into a file of its own under the data
/// directory while its offset is kept in the store. A finished upload is announced on topic `uploads`
/// and may start a job named in its metadata (`job`).
///
/// As a `Service` it removes unfinished uploads whose time ran out.
public final class Uploads: Service, Sendable {
    public struct Configuration: Sendable {
        /// Largest upload, advertised as `Tus-Max-Size`.
        public var maxSize: Int64 = 10 << 30
        /// How long an unfinished upload lives after its last change.
        public var expiry: Duration = .seconds(24 * 3600)
        /// How often expired uploads are removed.
        public var cleanupInterval: Duration = .seconds(60)
        /// Progress is saved at least this often (in bytes) while a body without checksum streams in.
        public var saveEvery: Int64 = 4 << 20

        public init() {}
    }

    /// The topic finished uploads are announced on (reserved: clients read it, only the server writes).
    public static let topic = TopicName.uploads

    public let configuration: Configuration
    public let directory: String
    private let store: any UploadStore
    private let broker: Broker
    private let jobs: Jobs
    /// Job types an upload's metadata may ask for.
    private let jobTypes: Set<String>
    private let fileIO = NonBlockingFileIO(threadPool: .singleton)
    private let clock: any WallClock
    private let logger: Logger

    /// - Parameter clock: what expiry is measured by.
    public init(
        store: any UploadStore,
        directory: String,
        broker: Broker,
        jobs: Jobs,
        jobTypes: Set<String>,
        configuration: Configuration = Configuration(),
        clock: any WallClock = SystemWallClock(),
        logger: Logger
    ) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        self.store = store
        self.directory = directory
        self.broker = broker
        self.jobs = jobs
        self.jobTypes = jobTypes
        self.configuration = configuration
        self.clock = clock
        self.logger = logger
    }

    /// Where an upload's bytes are.
    public func path(of id: String) -> String {
        (directory as NSString).appendingPathComponent(id)
    }

    /// Creates an upload of `length` bytes (`nil`: deferred), or with `final` the concatenation of
    /// finished partial uploads.
    public func create(length: Int64?, metadata: String, partial: Bool = false, final parts: [String]? = nil)
        async throws(UploadError) -> Upload
    {
        guard let parsed = UploadMetadata(header: metadata) else { throw .invalid("Upload-Metadata is malformed") }
        if let job = parsed["job"], !jobTypes.contains(job) {
            throw .invalid("metadata job must be one of \(jobTypes.sorted().joined(separator: ", "))")
        }
        if let length, length < 0 || length > configuration.maxSize { throw .tooLarge(configuration.maxSize) }
        let now = clock.now()
        var upload = Upload(
            id: store.newUploadID(),
            length: length,
            metadata: metadata,
            concatenation: partial ? .partial : parts.map { .final($0) },
            createdAt: now,
            expiresAt: now + configuration.expiry.milliseconds
        )
        try await attempt {
            FileManager.default.createFile(atPath: path(of: upload.id), contents: nil)
            if let parts {
                upload.length = try await concatenate(parts, into: upload.id)
                upload.offset = upload.length ?? 0
                upload.completedAt = now
            }
            try await store.create(upload)
        }
        if upload.isComplete { await announce(upload) }
        return upload
    }

    /// The upload, unless it does not exist (`notFound`) or its time ran out (`gone`).
    public func upload(id: String) async throws(UploadError) -> Upload {
        guard let upload = try await attempt({ try await store.upload(id: id) }) else { throw .notFound }
        guard upload.isComplete || upload.expiresAt > clock.now() else { throw .gone }
        return upload
    }

    /// Appends a PATCH body at `offset`. Bytes that arrive are kept even when the client goes midway,
    /// unless a checksum was given: then the body counts only if it arrived whole and matches.
    public func append(
        id: String,
        at offset: Int64,
        declaredLength: Int64?,
        checksum: UploadChecksum?,
        body: some AsyncSequence<ByteBuffer, any Error>
    ) async throws(UploadError) -> Upload {
        // Locked before the offset is read, so that a PATCH on another node cannot move it in between.
        try await exclusively(id) { () async throws(UploadError) -> Upload in
            try await write(id: id, at: offset, declaredLength: declaredLength, checksum: checksum, body: body)
        }
    }

    private func write(
        id: String,
        at offset: Int64,
        declaredLength: Int64?,
        checksum: UploadChecksum?,
        body: some AsyncSequence<ByteBuffer, any Error>
    ) async throws(UploadError) -> Upload {
        var upload = try await self.upload(id: id)
        if case .final = upload.concatenation { throw .finalUpload }
        guard offset == upload.offset else { throw .offsetMismatch(upload.offset) }
        if let declaredLength {
            guard upload.length == nil || upload.length == declaredLength, declaredLength >= offset else {
                throw .invalid("Upload-Length cannot change once set, nor be less than the offset")
            }
            guard declaredLength <= configuration.maxSize else { throw .tooLarge(configuration.maxSize) }
            upload.length = declaredLength
        }
        var verifier = checksum.map(ChecksumVerifier.init)
        var written = offset
        var interruption: (any Error)?
        do {
            try await fileIO.withFileHandle(path: path(of: id), mode: .write, flags: .allowFileCreation()) { file in
                var saved = written
                for try await chunk in body {
                    let limit = upload.length ?? configuration.maxSize
                    guard written + Int64(chunk.readableBytes) <= limit else {
                        throw upload.length == nil ? UploadError.tooLarge(limit) : .exceedsLength(limit)
                    }
                    try await fileIO.write(fileHandle: file, toOffset: written, buffer: chunk)
                    verifier?.update(chunk)
                    written += Int64(chunk.readableBytes)
                    if verifier == nil && written - saved >= configuration.saveEvery {
                        upload.offset = written
                        try await store.save(upload)
                        saved = written
                    }
                }
            }
        } catch {
            interruption = error
        }
        if let verifier {
            // Only a whole, matching body counts; the offset stays where it was otherwise.
            if let interruption { throw UploadError(interruption) }
            guard verifier.matches() else { throw .checksumMismatch }
        }
        let now = clock.now()
        upload.offset = written
        upload.expiresAt = now + configuration.expiry.milliseconds
        if upload.offset == upload.length {
            upload.completedAt = now
        }
        try await attempt { try await store.save(upload) }
        if upload.isComplete && upload.concatenation == nil {
            await announce(upload)
        }
        if let interruption { throw UploadError(interruption) }
        return upload
    }

    /// Up to `limit` uploads still being written (unfinished and not expired), newest first.
    public func inProgress(limit: Int) async throws(UploadError) -> [Upload] {
        let now = clock.now()
        return try await attempt { try await store.unfinishedUploads(limit: limit) }.filter { $0.expiresAt > now }
    }

    /// Removes an upload and its bytes (tus termination).
    public func terminate(id: String) async throws(UploadError) {
        _ = try await upload(id: id)
        try await exclusively(id) { () async throws(UploadError) in
            try await attempt {
                try await store.deleteUpload(id: id)
                try? FileManager.default.removeItem(atPath: path(of: id))
            }
        }
    }

    /// Removes unfinished uploads whose time ran out; returns how many.
    @discardableResult
    public func removeExpired() async throws -> Int {
        let expired = try await store.expiredUploads(now: clock.now())
        for id in expired {
            // One being written to now is left for the next round.
            try? await exclusively(id) { () async throws(UploadError) in
                try await attempt {
                    try await store.deleteUpload(id: id)
                    try? FileManager.default.removeItem(atPath: path(of: id))
                }
            }
        }
        return expired.count
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                let removed = try await removeExpired()
                if removed > 0 { logger.info("Expired uploads removed", metadata: ["count": "\(removed)"]) }
            } catch {
                logger.error("Upload cleanup failed", metadata: ["error": "\(error)"])
            }
            let interval = configuration.cleanupInterval
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }

    /// Copies finished partial uploads, in order, into the file of `id`; returns the total length.
    private func concatenate(_ parts: [String], into id: String) async throws -> Int64 {
        var sources: [String] = []
        for part in parts {
            guard let upload = try await store.upload(id: part), upload.concatenation == .partial else {
                throw UploadError.invalid("\(part) is not a partial upload")
            }
            guard upload.isComplete else { throw UploadError.invalid("partial upload \(part) is not finished") }
            sources.append(path(of: part))
        }
        let target = path(of: id)
        let inputs = sources
        return try await NIOThreadPool.singleton.runIfActive {
            let output = try FileHandle(forWritingTo: URL(fileURLWithPath: target))
            defer { try? output.close() }
            var total: Int64 = 0
            for source in inputs {
                let input = try FileHandle(forReadingFrom: URL(fileURLWithPath: source))
                defer { try? input.close() }
                while let chunk = try input.read(upToCount: 1 << 20), !chunk.isEmpty {
                    try output.write(contentsOf: chunk)
                    total += Int64(chunk.count)
                }
            }
            return total
        }
    }

    /// Publishes the finished upload on topic `uploads` and starts the job its metadata names.
    private func announce(_ upload: Upload) async {
        let metadata = UploadMetadata(header: upload.metadata)?.values ?? [:]
        var job: String?
        if let type = metadata["job"] {
            let input = Data(#"{"upload":"\#(upload.id)"}"#.utf8)
            job = try? await jobs.submit(NewJob(queue: "default", type: type, input: input)).job.id
        }
        var event: [String: Any] = [
            "id": upload.id, "length": upload.length ?? 0, "metadata": metadata,
            "url": "/v1/uploads/\(upload.id)", "content": "/v1/uploads/\(upload.id)/content",
        ]
        event["job"] = job
        do {
            let body = try JSONSerialization.data(
                withJSONObject: event,
                options: [.sortedKeys, .withoutEscapingSlashes]
            )
            _ = try await broker.publish(NewMessage(topic: Self.topic, contentType: "application/json", body: body))
        } catch {
            logger.error("Upload announcement failed", metadata: ["upload": "\(upload.id)", "error": "\(error)"])
        }
    }

    /// Runs `body` holding the upload's write lock, which the store keeps for every node sharing it;
    /// `locked` when another request holds it.
    private func exclusively<T>(_ id: String, _ body: () async throws(UploadError) -> T) async throws(UploadError) -> T
    {
        guard try await attempt({ try await store.lockUpload(id: id) }) else { throw .locked }
        do {
            let result = try await body()
            await store.unlockUpload(id: id)
            return result
        } catch {
            await store.unlockUpload(id: id)
            throw error
        }
    }

    /// Runs a store or file operation, reporting its failure as an `UploadError`.
    private func attempt<T>(_ operation: () async throws -> T) async throws(UploadError) -> T {
        do {
            return try await operation()
        } catch {
            throw UploadError(error)
        }
    }
}

/// Why an upload operation was refused; the API maps each to its tus status.
public enum UploadError: Error, Equatable {
    case notFound
    /// Expired.
    case gone
    case offsetMismatch(Int64)
    /// Another PATCH on the same upload is in progress.
    case locked
    case tooLarge(Int64)
    /// More bytes than the upload's length.
    case exceedsLength(Int64)
    case checksumMismatch
    /// PATCH on the concatenation of other uploads.
    case finalUpload
    case invalid(String)
    /// The client went before its body ended.
    case interrupted
    case failed(String)

    init(_ error: any Error) {
        switch error {
        case let error as UploadError: self = error
        case is RequestBodyStream.ClientGone: self = .interrupted
        case let error as HTTPError where error.status == .payloadTooLarge: self = .tooLarge(0)
        default: self = .failed(String(describing: error))
        }
    }
}
