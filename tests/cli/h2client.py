"""A small HTTP/2 client on a plain socket for the tests that must see frames: the `h2` library keeps the
protocol state, and `frames()` reads raw frames with `hyperframe` where a test sends what `h2` would refuse
to (more streams than allowed, data beyond a window)."""
import socket
import ssl

import h2.config
import h2.connection
import h2.events
from hyperframe.frame import Frame, PingFrame


class H2Client:
    def __init__(self, port, certificate=None, settings=None):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        if certificate:
            context = ssl.create_default_context(cafile=str(certificate))
            context.set_alpn_protocols(["h2"])
            sock = context.wrap_socket(sock, server_hostname="localhost")
            assert sock.selected_alpn_protocol() == "h2"
        self.sock = sock
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings(settings)
        self.flush()
        self.server_settings = {}
        self.pending = []
        self.responses = {}
        self.unread = b""
        self.terminated = False
        while not self.server_settings:
            self.read_events()

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, method, path, body=b"", headers=(), more_to_come=False):
        """Opens a stream; with `more_to_come` the body is left open for the caller to send."""
        stream = self.conn.get_next_available_stream_id()
        self.conn.send_headers(stream, [(":method", method), (":path", path), (":scheme", "http"),
                                        (":authority", "localhost"), *headers],
                               end_stream=not body and not more_to_come)
        if body:
            self.conn.send_data(stream, body, end_stream=True)
        self.flush()
        return stream

    def read_events(self):
        """Reads once from the socket and hands `h2` the whole frames received, one at a time; returns
        False once the server has closed. After the connection has ended (a GOAWAY), frames that follow in the
        same read are left out: `h2` refuses any frame then, and would drop the events already decoded."""
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            return False
        if not data:
            return False
        self.unread += data
        events = []
        while len(self.unread) >= 9 and not self.terminated:
            length = int.from_bytes(self.unread[:3], "big")
            if len(self.unread) < 9 + length:
                break
            frame, self.unread = self.unread[:9 + length], self.unread[9 + length:]
            events.extend(self.conn.receive_data(frame))
            self.terminated = any(isinstance(e, h2.events.ConnectionTerminated) for e in events)
        for event in events:
            if isinstance(event, h2.events.RemoteSettingsChanged):
                self.server_settings.update({code: change.new_value for code, change in event.changed_settings.items()})
            elif isinstance(event, h2.events.ResponseReceived):
                self.responses[event.stream_id] = [dict(event.headers), b""]
            elif isinstance(event, h2.events.DataReceived):
                self.responses[event.stream_id][1] += event.data
                if not self.terminated:
                    self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        self.pending.extend(events)
        if not self.terminated:
            self.flush()
        return True

    def wait_for(self, predicate):
        """Reads until an event satisfies `predicate`, and returns it; `None` if the server closes first."""
        while True:
            for index, event in enumerate(self.pending):
                if predicate(event):
                    del self.pending[:index + 1]
                    return event
            self.pending.clear()
            if not self.read_events():
                return None

    def wait_closed(self):
        """Reads until the server closes; returns the bytes that came after the connection ended (none from
        a server that closes right after its GOAWAY)."""
        while self.read_events():
            pass
        return self.unread

    def response(self, stream):
        """(status, body) of `stream` once it has ended."""
        ended = self.wait_for(lambda e: isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset))
                              and e.stream_id == stream)
        assert isinstance(ended, h2.events.StreamEnded), ended
        headers, body = self.responses[stream]
        return int(headers[":status"]), body

    def frames(self):
        """Raw frames from the socket, read with hyperframe, until the server closes; PINGs are answered."""
        buffer = b""
        while True:
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                return
            if not data:
                return
            buffer += data
            while len(buffer) >= 9:
                frame, length = Frame.parse_frame_header(memoryview(buffer[:9]))
                if len(buffer) < 9 + length:
                    break
                frame.parse_body(memoryview(buffer[9:9 + length]))
                buffer = buffer[9 + length:]
                if isinstance(frame, PingFrame) and "ACK" not in frame.flags:
                    self.sock.sendall(PingFrame(0, opaque_data=frame.opaque_data, flags=["ACK"]).serialize())
                yield frame

    def close(self):
        self.sock.close()
