import GRDB
import SwitchboardStore

extension SQLiteStore: TodoStore {
    public func createTodo(text: String) async throws -> TodoItem {
        try await writes.write { db in
            try db.execute(sql: "INSERT INTO todos (text) VALUES (?)", arguments: [text])
            return TodoItem(id: Int32(db.lastInsertedRowID), text: text)
        }
    }

    public func todos() async throws -> [TodoItem] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT id, text FROM todos ORDER BY id").map { row in
                TodoItem(id: row["id"], text: row["text"])
            }
        }
    }
}
