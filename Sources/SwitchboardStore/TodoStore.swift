/// The todo list of the gRPC `todoPackage.Todo` service: items with ids dense from 1, in order.
public struct TodoItem: Sendable, Equatable {
    public var id: Int32
    public var text: String

    public init(id: Int32, text: String) {
        self.id = id
        self.text = text
    }
}

public protocol TodoStore: Sendable {
    /// Appends an item with the next id and returns it once it is durable.
    func createTodo(text: String) async throws -> TodoItem
    /// Every item, by id.
    func todos() async throws -> [TodoItem]
}
