import GRPCCore
import SwitchboardProtos
import SwitchboardStore

/// The seed's `todoPackage.Todo`, unchanged: items kept in the store, ids dense from 1.
struct TodoService: TodoPackage_Todo.ServiceProtocol {
    let store: any TodoStore
    let authorizer: CallAuthorizer

    func createTodo(
        request: ServerRequest<TodoPackage_TodoItem>,
        context: ServerContext
    ) async throws -> ServerResponse<TodoPackage_TodoItem> {
        try await authorizer.authorize(.authenticated, for: authorizer.caller(of: request.metadata))
        let item = try await rpc { try await store.createTodo(text: request.message.text) }
        return ServerResponse(message: .init(item))
    }

    func readTodos(
        request: ServerRequest<TodoPackage_NoParam>,
        context: ServerContext
    ) async throws -> ServerResponse<TodoPackage_TodoItems> {
        try await authorizer.authorize(.authenticated, for: authorizer.caller(of: request.metadata))
        let items = try await rpc { try await store.todos() }
        return ServerResponse(message: .with { $0.items = items.map(TodoPackage_TodoItem.init) })
    }

    func readTodosStream(
        request: ServerRequest<TodoPackage_NoParam>,
        context: ServerContext
    ) async throws -> StreamingServerResponse<TodoPackage_TodoItem> {
        try await authorizer.authorize(.authenticated, for: authorizer.caller(of: request.metadata))
        let items = try await rpc { try await store.todos() }
        return StreamingServerResponse { writer in
            try await writer.write(contentsOf: items.map(TodoPackage_TodoItem.init))
            return [:]
        }
    }
}

extension TodoPackage_TodoItem {
    init(_ item: SwitchboardStore.TodoItem) {
        self.init()
        id = item.id
        text = item.text
    }
}
