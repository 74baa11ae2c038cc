// The peer of benchmarks/grpc.sh: the seed's todoPackage.Todo on grpc-go, todos in memory, ids dense
// from 1 as in the seed's server. Built offline from Debian's golang-google-grpc-dev by the script, with
// Go code generated from Protos/todo.proto.
package main

import (
	"context"
	"flag"
	"log"
	"net"
	"sync"

	"google.golang.org/grpc"

	todo "todopeer/todo"
)

type server struct {
	todo.UnimplementedTodoServer
	mu    sync.Mutex
	items []*todo.TodoItem
}

func (s *server) CreateTodo(_ context.Context, item *todo.TodoItem) (*todo.TodoItem, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	created := &todo.TodoItem{Id: int32(len(s.items) + 1), Text: item.Text}
	s.items = append(s.items, created)
	return created, nil
}

func (s *server) snapshot() []*todo.TodoItem {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*todo.TodoItem(nil), s.items...)
}

func (s *server) ReadTodos(context.Context, *todo.NoParam) (*todo.TodoItems, error) {
	return &todo.TodoItems{Items: s.snapshot()}, nil
}

func (s *server) ReadTodosStream(_ *todo.NoParam, stream todo.Todo_ReadTodosStreamServer) error {
	for _, item := range s.snapshot() {
		if err := stream.Send(item); err != nil {
			return err
		}
	}
	return nil
}

func main() {
	address := flag.String("listen", "127.0.0.1:50151", "address to listen on")
	flag.Parse()
	listener, err := net.Listen("tcp", *address)
	if err != nil {
		log.Fatal(err)
	}
	grpcServer := grpc.NewServer()
	todo.RegisterTodoServer(grpcServer, &server{})
	log.Printf("listening on %s", listener.Addr())
	log.Fatal(grpcServer.Serve(listener))
}
