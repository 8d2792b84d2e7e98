"""A FastCGI responder in the Python standard library only.

Just enough of the FastCGI specification (1996) for the demo site: a
program started with a listening socket as its fd 0 (the convention of
section 2.2, which gatehouse's `spawn:` follows) accepts connections on it,
reads each request's records and answers with what a CGI program would have
printed: a header block, a blank line, a body.

    import fcgi_lite
    fcgi_lite.serve(lambda params, stdin: b"Content-Type: text/plain\\r\\n\\r\\nhi\\n")

`params` is a dict of str (the CGI variables, sent as FCGI_PARAMS), `stdin`
the whole request body. One thread per connection; requests on a
connection are served one after another (no multiplexing), and a
connection is kept open when the server asks for it (FCGI_KEEP_CONN).
Real applications use flup or php-cgi; this exists so the demo needs nothing
that is not installed with Python.
"""
import socket
import struct
import threading

VERSION = 1
BEGIN_REQUEST, ABORT_REQUEST, END_REQUEST, PARAMS, STDIN, STDOUT = 1, 2, 3, 4, 5, 6
GET_VALUES, GET_VALUES_RESULT, UNKNOWN_TYPE = 9, 10, 11
RESPONDER = 1
KEEP_CONN = 1
REQUEST_COMPLETE, CANT_MPX_CONN, UNKNOWN_ROLE = 0, 1, 3
MAX_CONTENT = 65535
# What FCGI_GET_VALUES reports: the connections one copy serves at once.
MAX_CONNS = 8


def serve(app):
    """Accept on fd 0 forever, a thread per connection."""
    listener = socket.socket(fileno=0)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=_connection, args=(conn, app), daemon=True).start()


def _record(kind, request_id, content=b""):
    padding = -len(content) % 8
    return struct.pack("!BBHHBx", VERSION, kind, request_id, len(content), padding) + content + b"\0" * padding


def _stream(kind, request_id, data):
    """A stream cut into records of at most 65,535 bytes, then its empty end record."""
    chunks = [data[i:i + MAX_CONTENT] for i in range(0, len(data), MAX_CONTENT)]
    return b"".join(_record(kind, request_id, c) for c in chunks) + _record(kind, request_id)


def _end(request_id, protocol_status=REQUEST_COMPLETE):
    return _record(END_REQUEST, request_id, struct.pack("!IB3x", 0, protocol_status))


def _pairs(data):
    """Name-value pairs (section 3.4): lengths of 1 byte, or 4 with the high bit set."""
    out, i = {}, 0
    while i < len(data):
        lengths = []
        for _ in range(2):
            if data[i] & 0x80:
                lengths.append(struct.unpack("!I", data[i:i + 4])[0] & 0x7FFFFFFF)
                i += 4
            else:
                lengths.append(data[i])
                i += 1
        name = data[i:i + lengths[0]]
        value = data[i + lengths[0]:i + lengths[0] + lengths[1]]
        i += lengths[0] + lengths[1]
        out[name.decode("latin-1")] = value.decode("utf-8", "replace")
    return out


def _encode_pairs(pairs):
    out = b""
    for name, value in pairs.items():
        name, value = name.encode(), value.encode()
        for part in (name, value):
            out += bytes([len(part)]) if len(part) < 128 else struct.pack("!I", len(part) | 0x80000000)
        out += name + value
    return out


def _read_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _connection(conn, app):
    with conn:
        request = None  # [request_id, keep_conn, params bytes, stdin bytes]
        while True:
            header = _read_exact(conn, 8)
            if header is None:
                return
            _, kind, request_id, length, padding = struct.unpack("!BBHHBx", header)
            content = _read_exact(conn, length + padding)
            if content is None:
                return
            content = content[:length]
            if kind == GET_VALUES:
                known = {"FCGI_MAX_CONNS": str(MAX_CONNS), "FCGI_MAX_REQS": str(MAX_CONNS),
                         "FCGI_MPXS_CONNS": "0"}
                asked = {k: known[k] for k in _pairs(content) if k in known}
                conn.sendall(_record(GET_VALUES_RESULT, 0, _encode_pairs(asked)))
            elif kind == BEGIN_REQUEST:
                role, flags = struct.unpack("!HB5x", content)
                if request is not None:
                    conn.sendall(_end(request_id, CANT_MPX_CONN))
                elif role != RESPONDER:
                    conn.sendall(_end(request_id, UNKNOWN_ROLE))
                else:
                    request = [request_id, bool(flags & KEEP_CONN), b"", b""]
            elif request is None or request_id != request[0]:
                if request_id == 0:
                    conn.sendall(_record(UNKNOWN_TYPE, 0, bytes([kind]) + b"\0" * 7))
            elif kind == ABORT_REQUEST:
                conn.sendall(_end(request_id))
                if not request[1]:
                    return
                request = None
            elif kind == PARAMS:
                request[2] += content
            elif kind == STDIN and content:
                request[3] += content
            elif kind == STDIN:
                output = app(_pairs(request[2]), request[3])
                conn.sendall(_stream(STDOUT, request_id, output) + _end(request_id))
                if not request[1]:
                    return
                request = None
