import Foundation
import SwitchboardStore
import Testing

/// Upload records, their write locks and the todo list, on every backend.
@Suite struct UploadStoreTests {
    @Test(arguments: Backend.allCases)
    func anUploadIsCreatedSavedExpiredAndDeleted(_ backend: Backend) async throws {
        let store = try await backend.open()
        let id = store.newUploadID()
        var upload = Upload(id: id, length: nil, metadata: "filename Zm9v", createdAt: 1000, expiresAt: 5000)
        try await store.create(upload)
        #expect(try await store.upload(id: id) == upload)
        upload.length = 10
        upload.offset = 4
        try await store.save(upload)
        #expect(try await store.upload(id: id) == upload)
        let parts = Upload(
            id: store.newUploadID(),
            length: 3,
            offset: 3,
            metadata: "",
            concatenation: .final(["a", "b"]),
            createdAt: 1000,
            expiresAt: 1500,
            completedAt: 1200
        )
        try await store.create(parts)
        #expect(try await store.upload(id: parts.id) == parts)
        #expect(try await store.unfinishedUploads(limit: 10) == [upload])
        #expect(try await store.expiredUploads(now: 6000) == [id])
        try await store.deleteUpload(id: id)
        #expect(try await store.upload(id: id) == nil)
    }

    /// One request at a time writes to an upload, whichever node it reached.
    @Test(arguments: Backend.allCases)
    func anUploadsLockIsHeldOnceAcrossNodes(_ backend: Backend) async throws {
        let nodes = try await backend.openCluster(nodes: 2)
        #expect(try await nodes[0].lockUpload(id: "u1"))
        #expect(try await !nodes[0].lockUpload(id: "u1"))
        #expect(try await !nodes[1].lockUpload(id: "u1"))
        #expect(try await nodes[1].lockUpload(id: "u2"))
        await nodes[0].unlockUpload(id: "u1")
        #expect(try await nodes[1].lockUpload(id: "u1"))
        #expect(try await !nodes[0].lockUpload(id: "u1"))
    }

    @Test(arguments: Backend.allCases)
    func todoIdsAreDenseAcrossNodes(_ backend: Backend) async throws {
        let nodes = try await backend.openCluster(nodes: 2)
        let ids = try await withThrowingTaskGroup(of: Int32.self) { group in
            for index in 0..<20 {
                group.addTask { try await nodes[index % 2].createTodo(text: "item \(index)").id }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(ids.sorted() == Array(1...20))
        #expect(try await nodes[0].todos().map(\.id) == Array(1...20))
    }
}
