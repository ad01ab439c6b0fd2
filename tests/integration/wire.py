"""HTTP/1.1 on a raw socket, for clients no library will imitate: ones that stall mid-body,
declare a body they never send, or hang up halfway."""

from __future__ import annotations

import socket
from dataclasses import dataclass


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


def open_upload(
    port: int, path: str, headers: dict[str, str], declared: int | None, first: bytes = b""
) -> socket.socket:
    """A POST whose headers and `first` body bytes are sent; the rest is up to the caller."""
    lines = [f"POST {path} HTTP/1.1", f"host: 127.0.0.1:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if declared is None:
        lines.append("transfer-encoding: chunked")
    else:
        lines.append(f"content-length: {declared}")
    connection = socket.create_connection(("127.0.0.1", port), timeout=60)
    connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + first)
    return connection


def read_reply(connection: socket.socket, timeout: float = 60.0) -> Reply:
    """The response on `connection`, read until the server closes it."""
    connection.settimeout(timeout)
    data = b""
    try:
        while chunk := connection.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass  # the response, if any, arrived before the reset
    finally:
        connection.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    if not status_line:
        raise AssertionError("the server closed the connection without answering")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Reply(int(status_line.split()[1]), headers, body)
