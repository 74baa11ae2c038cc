"""gRPC with Python's grpcio, its stubs compiled from the repo's .proto files at test time: the seed's Todo
service, topics over every RPC kind, health, and the bad-input paths (status codes, deadlines, limits,
tokens)."""
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import jwt
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_tools import protoc

from conftest import ROOT, curl

SECRET = "a-development-secret-of-32-bytes!"


@pytest.fixture(scope="session")
def pb(tmp_path_factory):
    """The stubs of todo.proto and switchboard/v1/*.proto, as grpcio-tools makes them."""
    out = tmp_path_factory.mktemp("stubs")
    protos = ROOT / "Protos"
    files = ["todo.proto", "switchboard/v1/topics.proto", "switchboard/v1/jobs.proto"]
    assert protoc.main(["protoc", f"-I{protos}", f"--python_out={out}", f"--grpc_python_out={out}", *files]) == 0
    sys.path.insert(0, str(out))
    import todo_pb2, todo_pb2_grpc  # noqa: E401
    from switchboard.v1 import topics_pb2, topics_pb2_grpc

    class Stubs:
        pass

    stubs = Stubs()
    stubs.todo, stubs.todo_grpc, stubs.topics, stubs.topics_grpc = todo_pb2, todo_pb2_grpc, topics_pb2, topics_pb2_grpc
    return stubs


def channel(server, **options):
    return grpc.insecure_channel(server.grpc_target, options=list(options.items()))


def error_code(error):
    """The API's error code from the trailers of a failed call."""
    return dict(error.trailing_metadata() or ()).get("switchboard-error-code")


def test_the_seeds_todo_service_keeps_its_items_in_the_store(start_server, pb, tmp_path):
    data = tmp_path / "data"
    server = start_server("--data", str(data))
    with channel(server) as ch:
        todo = pb.todo_grpc.TodoStub(ch)
        first = todo.createTodo(pb.todo.TodoItem(id=-1, text="Do Something"))
        second = todo.createTodo(pb.todo.TodoItem(text="Then another"))
        assert (first.id, first.text, second.id) == (1, "Do Something", 2)
        assert [(i.id, i.text) for i in todo.readTodos(pb.todo.NoParam()).items] == \
            [(1, "Do Something"), (2, "Then another")]
    assert server.stop() == 0
    # Another process, the same store: the list survives and ids go on densely.
    server = start_server("--data", str(data))
    with channel(server) as ch:
        todo = pb.todo_grpc.TodoStub(ch)
        assert todo.createTodo(pb.todo.TodoItem(text="third")).id == 3
        assert [i.id for i in todo.readTodosStream(pb.todo.NoParam())] == [1, 2, 3]


def test_publish_and_subscribe_share_the_http_topics(start_server, pb):
    server = start_server()
    with channel(server) as ch:
        topics = pb.topics_grpc.TopicsStub(ch)
        stored = topics.Publish(pb.topics.PublishRequest(topic="orders", data=b'{"id":1}',
                                                        content_type="application/json"))
        assert (stored.topic, stored.offset, stored.content_type) == ("orders", 1, "application/json")
        # Published over HTTP, read over gRPC, and the other way round: one log.
        assert curl("-X", "POST", "--data-binary", "two", f"{server.url}/v1/topics/orders/messages")[0] == 201
        stream = topics.Subscribe(pb.topics.SubscribeRequest(topic="orders", after=0))
        events = [next(stream) for _ in range(2)]
        assert [(e.message.offset, e.message.data) for e in events] == [(1, b'{"id":1}'), (2, b"two")]
        # Live after catch-up.
        topics.Publish(pb.topics.PublishRequest(topic="orders", data=b"three"))
        assert next(stream).message.offset == 3
        stream.cancel()
        status, body = curl(f"{server.url}/v1/topics/orders/messages?after=0")
        assert [m["data"] for m in json.loads(body)["messages"]] == ['{"id":1}', "two", "three"]
        # Without `after`: only what is published from now on.
        fresh = topics.Subscribe(pb.topics.SubscribeRequest(topic="orders"))
        time.sleep(0.3)
        topics.Publish(pb.topics.PublishRequest(topic="orders", data=b"four"))
        assert next(fresh).message.data == b"four"
        fresh.cancel()
    # A cancelled stream frees its subscription.
    deadline = time.monotonic() + 5
    while "switchboard_subscribers 0" not in curl(f"{server.url}/metrics")[1]:
        assert time.monotonic() < deadline, curl(f"{server.url}/metrics")[1]
        time.sleep(0.1)


def test_publish_stream_acknowledges_only_durable_messages(start_server, pb):
    server = start_server()
    with channel(server) as ch:
        topics = pb.topics_grpc.TopicsStub(ch)
        reply = topics.PublishStream(pb.topics.PublishRequest(topic="bulk", data=f"m{n}".encode())
                                     for n in range(500))
        assert (reply.count, reply.last_offset) == (500, 500)
        # A refused message ends the stream with its status.
        with pytest.raises(grpc.RpcError) as refused:
            topics.PublishStream(iter([pb.topics.PublishRequest(topic="bulk", data=b"x"),
                                       pb.topics.PublishRequest(topic="bad name", data=b"y")]))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status, body = curl(f"{server.url}/v1/topics/bulk/messages?after=490&limit=100")
    assert [m["offset"] for m in json.loads(body)["messages"]][-1] >= 500


def test_session_subscribes_and_publishes_on_one_stream(start_server, pb):
    server = start_server()
    requests = []
    wake = threading.Condition()

    def outgoing():
        sent = 0
        while True:
            with wake:
                wake.wait_for(lambda: len(requests) > sent)
                request = requests[sent]
            sent += 1
            if request is None:
                return
            yield request

    def send(request):
        with wake:
            requests.append(request)
            wake.notify()

    T = pb.topics
    with channel(server) as ch:
        events = pb.topics_grpc.TopicsStub(ch).Session(outgoing())
        send(T.SessionRequest(subscribe=T.SubscribeRequest(topic="chat", after=0)))
        assert next(events).subscribed.topic == "chat"
        send(T.SessionRequest(publish=T.SessionPublish(ref="r1", message=T.PublishRequest(topic="chat", data=b"hi"))))
        got = [next(events) for _ in range(2)]
        kinds = sorted(e.WhichOneof("event") for e in got)
        assert kinds == ["message", "published"]
        assert [e.published.ref for e in got if e.HasField("published")] == ["r1"]
        send(T.SessionRequest(publish=T.SessionPublish(ref="r2", message=T.PublishRequest(topic="jobs.x", data=b"no"))))
        error = next(events).error
        assert (error.ref, error.code) == ("r2", "topic_reserved")
        send(T.SessionRequest(unsubscribe=T.Unsubscribe(topic="chat")))
        assert next(events).unsubscribed.topic == "chat"
        send(None)
        assert list(events) == []


def test_bad_requests_get_status_codes(start_server, pb):
    server = start_server()
    T = pb.topics
    with channel(server, **{"grpc.max_send_message_length": 16 * 1024 * 1024}) as ch:
        topics = pb.topics_grpc.TopicsStub(ch)
        with pytest.raises(grpc.RpcError) as invalid:
            topics.Publish(T.PublishRequest(topic="no spaces", data=b"x"))
        assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_code(invalid.value) == "topic_name_invalid"
        with pytest.raises(grpc.RpcError) as reserved:
            topics.Publish(T.PublishRequest(topic="jobs.forged", data=b"forged"))
        assert reserved.value.code() == grpc.StatusCode.PERMISSION_DENIED
        # Message data over --max-message-bytes (1 MiB), as over HTTP.
        with pytest.raises(grpc.RpcError) as big:
            topics.Publish(T.PublishRequest(topic="big", data=b"x" * (2 * 1024 * 1024)))
        assert big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error_code(big.value) == "body_too_large"
        # Over the transport's 4 MiB a call ends at once (grpc-swift's transport resets the stream).
        with pytest.raises(grpc.RpcError) as huge:
            topics.Publish(T.PublishRequest(topic="big", data=b"x" * (5 * 1024 * 1024)))
        assert huge.value.code() in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.CANCELLED)
        # A malformed protobuf body.
        garbage = ch.unary_unary("/switchboard.v1.Topics/Publish", request_serializer=lambda b: b,
                                 response_deserializer=lambda b: b)
        with pytest.raises(grpc.RpcError) as malformed:
            garbage(b"\xff\xff\xff\xff")
        assert malformed.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.INTERNAL)
        unknown = ch.unary_unary("/switchboard.v1.Topics/Nope", request_serializer=lambda b: b,
                                 response_deserializer=lambda b: b)
        with pytest.raises(grpc.RpcError) as unimplemented:
            unknown(b"")
        assert unimplemented.value.code() == grpc.StatusCode.UNIMPLEMENTED
        # A deadline ends a subscription that is waiting for messages.
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as late:
            list(topics.Subscribe(T.SubscribeRequest(topic="quiet"), timeout=0.5))
        assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < 3
        # The server is still there, and compressed calls work.
        assert topics.Publish(T.PublishRequest(topic="big", data=b"y" * 100_000),
                              compression=grpc.Compression.Gzip).offset == 1


def test_calls_need_a_token_with_the_right_claims(start_server, pb):
    server = start_server("--jwt-secret", SECRET)
    good = jwt.encode({"sub": "t", "exp": int(time.time()) + 600, "publish": ["chat.*"], "subscribe": ["chat.*"]},
                      SECRET, algorithm="HS256")
    T = pb.topics
    with channel(server) as ch:
        topics = pb.topics_grpc.TopicsStub(ch)
        with pytest.raises(grpc.RpcError) as anonymous:
            topics.Publish(T.PublishRequest(topic="chat.a", data=b"x"))
        assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as forged:
            topics.Publish(T.PublishRequest(topic="chat.a", data=b"x"), metadata=[("authorization", "Bearer nope")])
        assert forged.value.code() == grpc.StatusCode.UNAUTHENTICATED
        auth = [("authorization", f"Bearer {good}")]
        assert topics.Publish(T.PublishRequest(topic="chat.a", data=b"x"), metadata=auth).offset == 1
        with pytest.raises(grpc.RpcError) as forbidden:
            topics.Publish(T.PublishRequest(topic="other", data=b"x"), metadata=auth)
        assert forbidden.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError) as unreadable:
            next(topics.Subscribe(T.SubscribeRequest(topic="other", after=0), metadata=auth))
        assert unreadable.value.code() == grpc.StatusCode.PERMISSION_DENIED
        stream = topics.Subscribe(T.SubscribeRequest(topic="chat.a", after=0), metadata=auth)
        assert next(stream).message.data == b"x"
        stream.cancel()
        # Health needs no token, as /healthz.
        health = health_pb2_grpc.HealthStub(ch)
        assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING


def test_health_follows_the_node(start_server):
    server = start_server()
    with channel(server) as ch:
        health = health_pb2_grpc.HealthStub(ch)
        for service in ("", "switchboard.v1.Topics", "todoPackage.Todo"):
            assert health.Check(health_pb2.HealthCheckRequest(service=service)).status == \
                health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as unknown:
            health.Check(health_pb2.HealthCheckRequest(service="nope"))
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        server.process.send_signal(2)
        try:
            assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
        except grpc.RpcError:
            pass  # the listener closed before the change reached the client
    assert server.process.wait(timeout=15) == 0


def test_grpc_listen_off_and_bad_values(start_server, tmp_path):
    server = start_server("--grpc-listen", "off")
    assert curl(f"{server.url}/healthz")[0] == 200
    assert "gRPC listening" not in server.output()
    bad = subprocess.run([str(Path(server.process.args[0])), "serve", "--grpc-listen", "nowhere"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=30)
    assert bad.returncode != 0 and "grpc-listen" in bad.stderr
