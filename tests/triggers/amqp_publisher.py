"""A publisher that sends exactly the message it is given, over a socket, in AMQP 0-9-1
frames made by pamqp (the frame library under aiormq). aiormq gives every message it
publishes a ``message_id`` of its own making (it tracks returns by it); a tenant's
publisher need not set one, and the Queue trigger must then key the message by a digest
of it — which only a message truly without an id can show."""

from __future__ import annotations

import socket
from urllib.parse import unquote, urlsplit

from pamqp import commands, frame, header
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

from stepline_relay.mapping import AmqpMessage

TIMEOUT_S = 30.0
PERSISTENT = 2


class RawPublisher:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port or 5672), TIMEOUT_S)
        self.buffer = b""
        self.sock.sendall(frame.marshal(header.ProtocolHeader(), 0))
        self.expect(commands.Connection.Start)
        user, password = unquote(parts.username or "guest"), unquote(parts.password or "guest")
        self.send(commands.Connection.StartOk(response=f"\0{user}\0{password}"))
        tune = self.expect(commands.Connection.Tune)
        self.send(commands.Connection.TuneOk(channel_max=tune.channel_max,
                                             frame_max=tune.frame_max, heartbeat=0))
        vhost = unquote(parts.path[1:]) if parts.path not in ("", "/") else "/"
        self.send(commands.Connection.Open(virtual_host=vhost))
        self.expect(commands.Connection.OpenOk)
        self.send(commands.Channel.Open(), 1)
        self.expect(commands.Channel.OpenOk)
        self.send(commands.Confirm.Select(), 1)
        self.expect(commands.Confirm.SelectOk)

    def send(self, value, channel: int = 0) -> None:
        self.sock.sendall(frame.marshal(value, channel))

    def read(self):
        while True:
            if self.buffer:
                try:
                    used, _, value = frame.unmarshal(self.buffer)
                except Exception:  # an incomplete frame: read more  # noqa: BLE001
                    used = 0
                if used:
                    self.buffer = self.buffer[used:]
                    return value
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the broker closed the connection")
            self.buffer += chunk

    def expect(self, kind):
        value = self.read()
        assert isinstance(value, kind), f"expected {kind.__name__}, got {value!r}"
        return value

    def publish(self, queue: str, message: AmqpMessage) -> None:
        """One persistent message to ``queue`` (the default exchange), confirmed."""
        properties = commands.Basic.Properties(
            content_type=message.content_type, message_id=message.message_id,
            headers=dict(message.headers) or None, delivery_mode=PERSISTENT)
        self.send(commands.Basic.Publish(exchange="", routing_key=queue), 1)
        self.send(ContentHeader(body_size=len(message.body), properties=properties), 1)
        self.send(ContentBody(message.body), 1)
        self.expect(commands.Basic.Ack)

    def close(self) -> None:
        self.send(commands.Connection.Close(reply_code=200, reply_text="done", class_id=0,
                                            method_id=0))
        self.expect(commands.Connection.CloseOk)
        self.sock.close()


def publish(url: str, queue: str, messages: list[AmqpMessage]) -> None:
    publisher = RawPublisher(url)
    try:
        for message in messages:
            publisher.publish(queue, message)
    finally:
        publisher.close()
