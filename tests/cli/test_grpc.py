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

from conftest import ROOT, curl, wait_for_log

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
    from switchboard.v1 import jobs_pb2, jobs_pb2_grpc, topics_pb2, topics_pb2_grpc

    class Stubs:
        pass

    stubs = Stubs()
    stubs.todo, stubs.todo_grpc, stubs.topics, stubs.topics_grpc = todo_pb2, todo_pb2_grpc, topics_pb2, topics_pb2_grpc
    stubs.jobs, stubs.jobs_grpc = jobs_pb2, jobs_pb2_grpc
    return stubs


def channel(server, **options):
    return grpc.insecure_channel(server.grpc_target, options=list(options.items()))


def error_code(error):
    """The API's error code from the trailers of a failed call."""
    return dict(error.trailing_metadata() or ()).get("switchboard-error-code")


class Outgoing:
    """The requests of a client-streaming call, handed over one at a time while the call runs; `close()`
    half-closes it."""

    def __init__(self, *first):
        self.requests = list(first)
        self.wake = threading.Condition()

    def send(self, request):
        with self.wake:
            self.requests.append(request)
            self.wake.notify()

    def close(self):
        self.send(None)

    def __iter__(self):
        sent = 0
        while True:
            with self.wake:
                if not self.wake.wait_for(lambda: len(self.requests) > sent, timeout=30):
                    return  # the call ended without closing
                request = self.requests[sent]
            sent += 1
            if request is None:
                return
            yield request


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
    outgoing = Outgoing()
    send = outgoing.send
    T = pb.topics
    with channel(server) as ch:
        events = pb.topics_grpc.TopicsStub(ch).Session(iter(outgoing))
        send(T.SessionRequest(subscribe=T.SubscribeRequest(topic="chat", after=0)))
        assert next(events).subscribed.topic == "chat"
        send(T.SessionRequest(publish=T.SessionPublish(ref="r1", message=T.PublishRequest(topic="chat", data=b"hi"))))
        got = [next(events) for _ in range(2)]
        kinds = sorted(e.WhichOneof("event") for e in got)
        assert kinds == ["message", "published"]
        assert [e.published.ref for e in got if e.HasField("published")] == ["r1"]
        for topic in ("jobs.x", "uploads"):
            send(T.SessionRequest(publish=T.SessionPublish(ref="r2", message=T.PublishRequest(topic=topic, data=b"no"))))
            error = next(events).error
            assert (error.ref, error.code) == ("r2", "topic_reserved")
        send(T.SessionRequest(unsubscribe=T.Unsubscribe(topic="chat")))
        assert next(events).unsubscribed.topic == "chat"
        outgoing.close()
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
        # An offset no message can follow.
        with pytest.raises(grpc.RpcError) as beyond:
            next(topics.Subscribe(T.SubscribeRequest(topic="edge", after=2**63 - 1)))
        assert (beyond.value.code(), error_code(beyond.value)) == \
            (grpc.StatusCode.INVALID_ARGUMENT, "invalid_parameter")
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


def test_grpc_listen_off_ipv6_and_bad_values(start_server, pb, tmp_path):
    ipv6 = start_server("--grpc-listen", "[::1]:0")
    port = wait_for_log(ipv6, r"grpc_address=\[::1\]:(\d+)", timeout=30).group(1)
    with grpc.insecure_channel(f"[::1]:{port}") as ch:
        assert pb.todo_grpc.TodoStub(ch).createTodo(pb.todo.TodoItem(text="over IPv6")).id == 1
    server = start_server("--grpc-listen", "off")
    assert curl(f"{server.url}/healthz")[0] == 200
    assert "gRPC listening" not in server.output()
    bad = subprocess.run([str(Path(server.process.args[0])), "serve", "--grpc-listen", "nowhere"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=30)
    assert bad.returncode != 0 and "grpc-listen" in bad.stderr


def test_jobs_submit_get_watch_and_cancel(start_server, pb):
    server = start_server()
    J = pb.jobs
    with channel(server) as ch:
        jobs = pb.jobs_grpc.JobsStub(ch)
        # The built-in workers of queue "default" run a sleep job; Watch follows it to the end.
        job = jobs.Submit(J.SubmitRequest(type="sleep", input='{"seconds":0.3}'))
        assert job.state == J.QUEUED and job.queue == "default"
        states = [j.state for j in jobs.Watch(J.GetRequest(id=job.id), timeout=10)]
        assert states[-1] == J.SUCCEEDED and J.RUNNING in states
        done = jobs.Get(J.GetRequest(id=job.id))
        assert json.loads(done.result) == {"slept": 0.3} and done.attempts == 1
        # The same job over HTTP.
        assert json.loads(curl(f"{server.url}/v1/jobs/{job.id}")[1])["state"] == "succeeded"
        # A job for external workers, cancelled while queued.
        queued = jobs.Submit(J.SubmitRequest(queue="external", type="resize", input='{"w":1}'))
        assert jobs.Cancel(J.GetRequest(id=queued.id)).state == J.CANCELLED
        with pytest.raises(grpc.RpcError) as again:
            jobs.Cancel(J.GetRequest(id=queued.id))
        assert again.value.code() == grpc.StatusCode.ALREADY_EXISTS and error_code(again.value) == "job_state_conflict"
        for bad, code in [(J.SubmitRequest(type="nope"), "job_type_unknown"),
                          (J.SubmitRequest(queue="x", type="t", input="{not json"), "invalid_input"),
                          (J.SubmitRequest(queue="bad queue", type="t"), "queue_name_invalid")]:
            with pytest.raises(grpc.RpcError) as refused:
                jobs.Submit(bad)
            assert (refused.value.code(), error_code(refused.value)) == (grpc.StatusCode.INVALID_ARGUMENT, code)
        with pytest.raises(grpc.RpcError) as missing:
            jobs.Get(J.GetRequest(id="00000000-0000-0000-0000-000000000000"))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_work_stream_leases_runs_and_finishes_jobs(start_server, pb):
    server = start_server()
    J = pb.jobs
    with channel(server) as ch:
        jobs = pb.jobs_grpc.JobsStub(ch)
        ids = [jobs.Submit(J.SubmitRequest(queue="images", type="resize", input=json.dumps({"n": n}))).id
               for n in range(3)]
        outgoing = Outgoing()
        send = outgoing.send
        events = jobs.Work(iter(outgoing), timeout=20)
        send(J.WorkRequest(start=J.WorkStart(queues=["images"], concurrency=2, lease_seconds=30)))
        # Two at once (the concurrency), in submission order.
        first, second = next(events).job, next(events).job
        assert [first.id, second.id] == ids[:2] and first.state == J.RUNNING
        send(J.WorkRequest(heartbeat=J.Heartbeat(id=first.id)))
        assert next(events).updated.id == first.id
        send(J.WorkRequest(complete=J.Complete(id=first.id, result='{"ok":true}')))
        answers = [next(events) for _ in range(2)]  # the completion, and the third job in the freed slot
        updated = [e.updated for e in answers if e.HasField("updated")]
        assert [(u.id, u.state) for u in updated] == [(first.id, J.SUCCEEDED)]
        third = [e.job for e in answers if e.HasField("job")]
        assert [j.id for j in third] == [ids[2]]
        send(J.WorkRequest(fail=J.Fail(id=second.id, error="broken", retry=False)))
        assert next(events).updated.state == J.FAILED
        # Not held by this stream: an error event, and the stream goes on.
        send(J.WorkRequest(complete=J.Complete(id=second.id)))
        assert next(events).error.code == "lease_lost"
        outgoing.close()
        assert list(events) == []
    # The third job was never finished: it is still running under its lease.
    third_job = json.loads(curl(f"{server.url}/v1/jobs/{ids[2]}")[1])
    assert third_job["state"] == "running"
    assert json.loads(curl(f"{server.url}/v1/jobs/{first.id}")[1])["result"] == {"ok": True}


def test_a_dropped_work_stream_returns_its_jobs_at_lease_expiry(start_server, pb):
    server = start_server()
    J = pb.jobs
    with channel(server) as ch:
        jobs = pb.jobs_grpc.JobsStub(ch)
        job_id = jobs.Submit(J.SubmitRequest(queue="q", type="t")).id
        events = jobs.Work(iter(Outgoing(J.WorkRequest(start=J.WorkStart(queues=["q"], lease_seconds=1)))),
                           timeout=10)
        assert next(events).job.id == job_id
        events.cancel()
        # Another worker gets it once the lease has run out.
        time.sleep(1.5)
        again = jobs.Work(iter(Outgoing(J.WorkRequest(start=J.WorkStart(queues=["q"], lease_seconds=5)))),
                          timeout=10)
        leased = next(again).job
        assert (leased.id, leased.attempts) == (job_id, 2)
        again.cancel()
        # A worker waiting on an empty queue ends at its deadline.
        waiting = jobs.Work(iter(Outgoing(J.WorkRequest(start=J.WorkStart(queues=["empty"])))), timeout=0.5)
        with pytest.raises(grpc.RpcError) as late:
            list(waiting)
        assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        with pytest.raises(grpc.RpcError) as no_start:
            list(jobs.Work(iter([J.WorkRequest(heartbeat=J.Heartbeat(id="x"))]), timeout=5))
        assert no_start.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_reflection_describes_the_served_services(start_server, pb):
    from google.protobuf import descriptor_pool, message_factory
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    server = start_server()
    with channel(server) as ch:
        # grpcio-reflection's client database, as grpcurl and Postman use it: no .proto files at hand.
        database = ProtoReflectionDescriptorDatabase(ch)
        assert set(database.get_services()) >= {"todoPackage.Todo", "switchboard.v1.Topics", "switchboard.v1.Jobs",
                                                 "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"}
        assert "grpc.testing.TestService" not in database.get_services()  # only with --grpc-interop
        pool = descriptor_pool.DescriptorPool(database)
        method = pool.FindServiceByName("switchboard.v1.Topics").methods_by_name["Publish"]
        request_class = message_factory.GetMessageClass(method.input_type)
        reply_class = message_factory.GetMessageClass(method.output_type)
        publish = ch.unary_unary("/switchboard.v1.Topics/Publish", request_serializer=request_class.SerializeToString,
                                 response_deserializer=reply_class.FromString)
        stored = publish(request_class(topic="reflected", data=b"hello"))
        assert (stored.topic, stored.offset, stored.data) == ("reflected", 1, b"hello")
        assert pool.FindMessageTypeByName("switchboard.v1.SessionEvent").fields_by_name["error"]
        with pytest.raises(KeyError):
            pool.FindServiceByName("switchboard.v1.Nothing")
    interop = start_server("--grpc-interop", "on")
    with channel(interop) as ch:
        assert "grpc.testing.TestService" in ProtoReflectionDescriptorDatabase(ch).get_services()


def test_calls_are_counted_and_logged(start_server, pb):
    server = start_server()
    with channel(server) as ch:
        todo = pb.todo_grpc.TodoStub(ch)
        todo.createTodo(pb.todo.TodoItem(text="one"))
        todo.createTodo(pb.todo.TodoItem(text="two"))
        with pytest.raises(grpc.RpcError):
            pb.topics_grpc.TopicsStub(ch).Publish(pb.topics.PublishRequest(topic="bad name", data=b"x"))
        stream = pb.topics_grpc.TopicsStub(ch).Subscribe(pb.topics.SubscribeRequest(topic="t"), timeout=0.5)
        with pytest.raises(grpc.RpcError):
            list(stream)
    # The server ends the call at its deadline, unless the client's cancellation gets there first.
    ended = wait_for_log(server, r"\[SwitchboardGRPC\] /switchboard.v1.Topics/Subscribe (DEADLINE_EXCEEDED|CANCELLED)$")
    metrics = curl(f"{server.url}/metrics")[1]

    def value(name, **labels):
        for line in metrics.splitlines():
            if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"{name} {labels} not in\n{metrics}")

    assert value("grpc_server_handled_total", grpc_method="createTodo", grpc_code="OK",
                 grpc_service="todoPackage.Todo", grpc_type="unary") == 2
    assert value("grpc_server_started_total", grpc_method="createTodo") == 2
    assert value("grpc_server_handling_seconds_count", grpc_method="createTodo") == 2
    assert value("grpc_server_handled_total", grpc_method="Publish", grpc_code="INVALID_ARGUMENT") == 1
    assert value("grpc_server_handled_total", grpc_method="Subscribe", grpc_code=ended.group(1),
                 grpc_type="server_stream") == 1
    line = wait_for_log(server, r"^.*log=access.*\[SwitchboardGRPC\] /todoPackage.Todo/createTodo OK$").group(0)
    assert re.search(r"duration_ms=\d+\.\d{3} ", line) and "peer=ipv4:127.0.0.1:" in line
    assert re.search(r"/switchboard.v1.Topics/Publish INVALID_ARGUMENT$", server.output(), re.M)
    quiet = start_server("--access-log", "off")
    with channel(quiet) as ch:
        pb.todo_grpc.TodoStub(ch).createTodo(pb.todo.TodoItem(text="one"))
    time.sleep(0.3)
    assert "SwitchboardGRPC] /todoPackage" not in quiet.output()


def test_grpc_over_tls_with_the_http_certificate(start_server, pb, tmp_path):
    data = tmp_path / "data"
    server = start_server("--data", str(data), "--tls-self-signed", "--tls-listen", "127.0.0.1:0",
                          "--grpc-tls-listen", "127.0.0.1:0")
    port = wait_for_log(server, r"grpc_tls_address=127\.0\.0\.1:(\d+)", timeout=30).group(1)
    credentials = grpc.ssl_channel_credentials((data / "tls" / "self-signed-cert.pem").read_bytes())
    with grpc.secure_channel(f"localhost:{port}", credentials) as ch:
        assert pb.todo_grpc.TodoStub(ch).createTodo(pb.todo.TodoItem(text="secret")).id == 1
    with grpc.insecure_channel(server.grpc_target) as ch:  # the cleartext listener stays
        assert [i.text for i in pb.todo_grpc.TodoStub(ch).readTodosStream(pb.todo.NoParam())] == ["secret"]
    # A client that does not trust the certificate is refused in the handshake.
    with grpc.secure_channel(f"localhost:{port}", grpc.ssl_channel_credentials()) as ch:
        with pytest.raises(grpc.RpcError) as untrusted:
            pb.todo_grpc.TodoStub(ch).readTodos(pb.todo.NoParam(), timeout=5)
        assert untrusted.value.code() == grpc.StatusCode.UNAVAILABLE


def test_keepalive_pings_idle_connections(start_server):
    import socket
    import h2.config
    import h2.connection
    import h2.events

    server = start_server("--grpc-keepalive", "1s")
    host, port = server.grpc_target.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        connection.initiate_connection()
        sock.sendall(connection.data_to_send())
        started, pinged = time.monotonic(), None
        while pinged is None and time.monotonic() - started < 8:
            for event in connection.receive_data(sock.recv(65536)):
                if isinstance(event, h2.events.PingReceived):
                    pinged = time.monotonic() - started
            sock.sendall(connection.data_to_send())  # answers the ping
        assert pinged is not None and 0.5 < pinged < 5
    bad = subprocess.run([str(Path(server.process.args[0])), "serve", "--grpc-keepalive", "soon"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0 and "grpc-keepalive" in bad.stderr


def test_kill_9_loses_no_acknowledged_publish(start_server, pb, tmp_path):
    data = tmp_path / "data"
    server = start_server("--data", str(data))
    T = pb.topics
    with channel(server) as ch:
        topics = pb.topics_grpc.TopicsStub(ch)
        assert topics.PublishStream(T.PublishRequest(topic="ledger", data=f"s{n}".encode())
                                    for n in range(200)).count == 200
        # A session publishing as fast as it can, each publish acknowledged by reference, killed mid-way.
        outgoing = Outgoing()
        events = topics.Session(iter(outgoing))
        acknowledged = {}

        def read_acks():
            try:
                for event in events:
                    if event.HasField("published"):
                        acknowledged[event.published.ref] = event.published.message.offset
            except grpc.RpcError:
                pass

        reader = threading.Thread(target=read_acks)
        reader.start()
        # And a PublishStream still sending when the process dies: it is never answered, but what a reader
        # saw of it before the kill must survive, in order and without gaps.
        bulk = Outgoing()
        bulk_call = topics.PublishStream.future(iter(bulk))
        for n in range(300):
            bulk.send(T.PublishRequest(topic="bulk", data=f"b{n}".encode()))
        seen = []
        while len(seen) < 100:
            seen = json.loads(curl(f"{server.url}/v1/topics/bulk/messages?after=0&limit=1000")[1])["messages"]
        for n in range(5000):
            outgoing.send(T.SessionRequest(publish=T.SessionPublish(
                ref=str(n), message=T.PublishRequest(topic="ledger", data=f"p{n}".encode()))))
            if n == 100:
                while len(acknowledged) < 50:
                    time.sleep(0.01)
                server.process.kill()
                break
        reader.join(timeout=10)
        outgoing.close()
        bulk.close()
        with pytest.raises(grpc.RpcError):
            bulk_call.result(timeout=10)
    server.process.wait()
    assert len(acknowledged) >= 50
    server = start_server("--data", str(data))
    status, body = curl(f"{server.url}/v1/topics/bulk/messages?after=0&limit=1000")
    survived = [(m["offset"], m["data"]) for m in json.loads(body)["messages"]]
    assert len(survived) >= len(seen)
    assert survived == [(n + 1, f"b{n}") for n in range(len(survived))]
    status, body = curl(f"{server.url}/v1/topics/ledger/messages?after=0&limit=1000")
    stored = {m["offset"]: m["data"] for m in json.loads(body)["messages"]}
    assert [stored[offset] for offset in range(1, 201)] == [f"s{n}" for n in range(200)]
    for ref, offset in acknowledged.items():
        assert stored[offset] == f"p{ref}"
    # What was stored is the sent order without gaps, though some of it was never acknowledged.
    assert sorted(stored) == list(range(1, len(stored) + 1))
    assert [stored[offset] for offset in range(201, len(stored) + 1)] == [f"p{n}" for n in range(len(stored) - 200)]


def test_idempotency_key_metadata_runs_a_call_once(start_server, pb):
    server = start_server()
    with channel(server) as ch:
        topics = pb.topics_grpc.TopicsStub(ch)
        request = pb.topics.PublishRequest(topic="payments", data=b"charge 1")
        key = (("idempotency-key", "charge-1"),)
        first, call = topics.Publish.with_call(request, metadata=key)
        again, replay = topics.Publish.with_call(request, metadata=key)
        assert (again.offset, again.id) == (first.offset, first.id)
        assert "idempotent-replayed" not in dict(call.initial_metadata())
        assert dict(replay.initial_metadata())["idempotent-replayed"] == "true"
        # The same key on another request is refused; the HTTP API shares the keys.
        with pytest.raises(grpc.RpcError) as reused:
            topics.Publish(pb.topics.PublishRequest(topic="payments", data=b"charge 2"), metadata=key)
        assert reused.value.code() == grpc.StatusCode.ALREADY_EXISTS
        assert error_code(reused.value) == "idempotency_key_reused"
        status, body = curl("-X", "POST", "-H", "Idempotency-Key: charge-1", "--data-binary", "charge 1",
                            f"{server.url}/v1/topics/payments/messages")
        assert status == 422 and json.loads(body)["error"]["code"] == "idempotency_key_reused"
        with pytest.raises(grpc.RpcError) as invalid:
            topics.Publish(request, metadata=(("idempotency-key", "k" * 256),))
        assert (invalid.value.code(), error_code(invalid.value)) == \
            (grpc.StatusCode.INVALID_ARGUMENT, "idempotency_key_invalid")
        # A refused call leaves no record: its retry runs again.
        with pytest.raises(grpc.RpcError):
            topics.Publish(pb.topics.PublishRequest(topic="bad name", data=b"x"), metadata=(("idempotency-key", "r"),))
        jobs = pb.jobs_grpc.JobsStub(ch)
        submit = pb.jobs.SubmitRequest(type="sleep", input='{"seconds":0.01}')
        job = jobs.Submit(submit, metadata=(("idempotency-key", "job-1"),))
        assert jobs.Submit(submit, metadata=(("idempotency-key", "job-1"),)).id == job.id
        assert jobs.Submit(submit).id != job.id
    status, body = curl(f"{server.url}/v1/topics/payments/messages?after=0")
    assert [m["data"] for m in json.loads(body)["messages"]] == ["charge 1"]


def test_the_cli_publishes_and_subscribes_over_grpc(start_server):
    from conftest import BINARY
    server = start_server()
    target = ["--url", server.url, "--grpc", server.grpc_target]
    subscriber = subprocess.Popen([str(BINARY), "subscribe", "news", "--via", "grpc", "--after", "0", "--count", "3",
                                   *target], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    receipts = []
    for text in ("one", "two"):
        published = subprocess.run([str(BINARY), "publish", "news", text, "--via", "grpc", *target],
                                   capture_output=True, text=True, timeout=30)
        assert published.returncode == 0, published.stderr
        receipts.append(json.loads(published.stdout))
    assert [(r["topic"], r["offset"]) for r in receipts] == [("news", 1), ("news", 2)]
    assert subprocess.run([str(BINARY), "publish", "news", "three", *target], capture_output=True).returncode == 0
    out, err = subscriber.communicate(timeout=30)
    assert subscriber.returncode == 0, err
    assert out.splitlines() == ["1\tone", "2\ttwo", "3\tthree"]
    # A listener that is not there, and an address that is not one: one line and status 1.
    for address in ("127.0.0.1:1", "nowhere"):
        failed = subprocess.run([str(BINARY), "publish", "news", "x", "--via", "grpc", "--grpc", address],
                                capture_output=True, text=True, timeout=30)
        assert failed.returncode == 1 and failed.stderr.startswith("switchboard: "), failed.stderr


def test_calls_per_connection_are_capped_by_http2_max_streams(start_server, pb):
    import socket
    import h2.config
    import h2.connection
    import h2.events

    server = start_server("--http2-max-streams", "7")
    host, port = server.grpc_target.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        connection.initiate_connection()
        sock.sendall(connection.data_to_send())
        settings = None
        while settings is None:
            for event in connection.receive_data(sock.recv(65536)):
                if isinstance(event, h2.events.RemoteSettingsChanged):
                    settings = event.changed_settings
        assert settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS].new_value == 7
    # Calls within the limit run side by side on one channel.
    with channel(server) as ch:
        topics = pb.topics_grpc.TopicsStub(ch)
        streams = [topics.Subscribe(pb.topics.SubscribeRequest(topic=f"cap{n}", after=0), timeout=20)
                   for n in range(3)]
        for n in range(3):
            topics.Publish(pb.topics.PublishRequest(topic=f"cap{n}", data=b"x"))
        assert [next(stream).message.topic for stream in streams] == ["cap0", "cap1", "cap2"]
        for stream in streams:
            stream.cancel()
