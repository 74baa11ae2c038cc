import PostgresNIO
import SwitchboardStore

extension PostgresStore: TodoStore {
    /// Ids stay dense from 1: the table is locked for the insert, so the next id is the largest plus one
    /// (a sequence would leave holes after a rollback).
    public func createTodo(text: String) async throws -> TodoItem {
        try await transaction { [self] connection in
            try await connection.query("LOCK TABLE todos IN EXCLUSIVE MODE", logger: logger)
            for try await id in try await connection.query(
                "INSERT INTO todos (id, text) SELECT COALESCE(MAX(id), 0) + 1, \(text) FROM todos RETURNING id",
                logger: logger
            ).decode(Int32.self) {
                return TodoItem(id: id, text: text)
            }
            throw PostgresStoreError.noRow
        }
    }

    public func todos() async throws -> [TodoItem] {
        try await withConnection { [self] connection in
            var items: [TodoItem] = []
            for try await (id, text) in try await connection.query(
                "SELECT id, text FROM todos ORDER BY id",
                logger: logger
            )
            .decode((Int32, String).self) {
                items.append(TodoItem(id: id, text: text))
            }
            return items
        }
    }
}

/// A statement that always returns a row returned none.
enum PostgresStoreError: Error {
    case noRow
}
