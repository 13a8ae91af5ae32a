#!/usr/bin/env python3
"""Readiness probes that speak the real wire protocols, standard library only.

  probe.py kafka HOST PORT   Kafka Metadata v4 request; ok when the broker lists itself.
  probe.py cql HOST PORT     CQL v4 STARTUP + `SELECT release_version FROM system.local`.

Prints one line (broker list / release_version) and exits 0 when ready, 1 otherwise.
Used by kafka.sh / cassandra.sh for start readiness and `status`, so neither needs a JVM
(Kafka's CLI takes seconds to boot) nor cqlsh.
"""
import socket
import struct
import sys

TIMEOUT = 3.0


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by peer")
        buf += chunk
    return buf


class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, n):
        v = self.data[self.pos:self.pos + n]
        if len(v) != n:
            raise ValueError("short response")
        self.pos += n
        return v

    def i8(self):
        return struct.unpack(">b", self.take(1))[0]

    def i16(self):
        return struct.unpack(">h", self.take(2))[0]

    def u16(self):
        return struct.unpack(">H", self.take(2))[0]

    def i32(self):
        return struct.unpack(">i", self.take(4))[0]

    def kstring(self):  # Kafka nullable string: int16 length, -1 = null
        n = self.i16()
        return None if n < 0 else self.take(n).decode()

    def cstring(self):  # CQL [string]: unsigned short length
        return self.take(self.u16()).decode()

    def cbytes(self):  # CQL [bytes]: int length, <0 = null
        n = self.i32()
        return None if n < 0 else self.take(n)


def kafka(host, port):
    client_id = b"metachat-probe"
    # Metadata v4 (non-flexible; v0-v3 were removed in Kafka 4). Request header v1.
    body = struct.pack(">hhih", 3, 4, 42, len(client_id)) + client_id
    body += struct.pack(">i", -1)  # topics: null => all topics
    body += b"\x00"  # allow_auto_topic_creation = false
    with socket.create_connection((host, port), timeout=TIMEOUT) as s:
        s.settimeout(TIMEOUT)
        s.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", recv_exact(s, 4))[0]
        r = Reader(recv_exact(s, size))
    if r.i32() != 42:
        raise ValueError("bad correlation id")
    r.i32()  # throttle_time_ms
    brokers = []
    for _ in range(r.i32()):
        node_id, bhost, bport = r.i32(), r.kstring(), r.i32()
        r.kstring()  # rack
        brokers.append(f"{node_id}@{bhost}:{bport}")
    cluster_id = r.kstring()
    controller_id = r.i32()
    if not brokers or controller_id < 0:
        raise ValueError(f"no broker/controller in metadata yet (brokers={brokers}, controller={controller_id})")
    return f"cluster {cluster_id} brokers {','.join(brokers)} controller {controller_id}"


def cql_frame(opcode, body, stream=1):
    return struct.pack(">BBhBi", 0x04, 0, stream, opcode, len(body)) + body


def cql_read(s):
    version, _flags, _stream, opcode, length = struct.unpack(">BBhBi", recv_exact(s, 9))
    body = recv_exact(s, length)
    if opcode == 0x00:  # ERROR
        r = Reader(body)
        code = r.i32()
        raise RuntimeError(f"CQL error 0x{code:04x}: {r.cstring()}")
    return opcode, body


def cql(host, port):
    with socket.create_connection((host, port), timeout=TIMEOUT) as s:
        s.settimeout(TIMEOUT)
        startup = struct.pack(">H", 1)
        for k in (b"CQL_VERSION", b"3.0.0"):
            startup += struct.pack(">H", len(k)) + k
        s.sendall(cql_frame(0x01, startup))
        opcode, _ = cql_read(s)
        if opcode != 0x02:  # READY (0x03 AUTHENTICATE would mean auth is on)
            raise RuntimeError(f"unexpected reply to STARTUP: opcode 0x{opcode:02x}")
        q = b"SELECT release_version FROM system.local"
        body = struct.pack(">i", len(q)) + q + struct.pack(">HB", 0x0001, 0)  # consistency ONE, no flags
        s.sendall(cql_frame(0x07, body, stream=2))
        opcode, body = cql_read(s)
    if opcode != 0x08:
        raise RuntimeError(f"unexpected reply to QUERY: opcode 0x{opcode:02x}")
    r = Reader(body)
    if r.i32() != 0x0002:  # Rows
        raise RuntimeError("QUERY result is not Rows")
    flags, ncols = r.i32(), r.i32()
    if flags & 0x0002:
        r.cbytes()  # paging state
    if not flags & 0x0004:  # metadata present
        if flags & 0x0001:
            r.cstring(), r.cstring()  # global keyspace, table
        for _ in range(ncols):
            if not flags & 0x0001:
                r.cstring(), r.cstring()
            r.cstring()  # column name
            if r.u16() != 0x000D:  # varchar
                raise RuntimeError("unexpected column type")
    if r.i32() < 1:
        raise RuntimeError("system.local returned no row")
    value = r.cbytes()
    return "release_version " + (value.decode() if value is not None else "null")


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("kafka", "cql"):
        print(__doc__, file=sys.stderr)
        return 2
    kind, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    try:
        print((kafka if kind == "kafka" else cql)(host, port))
        return 0
    except Exception as e:  # noqa: BLE001 - any failure means "not ready"
        print(f"not ready: {e.__class__.__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
