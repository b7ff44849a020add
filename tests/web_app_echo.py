"""A tiny web app for jobs in tests: HTTP and a WebSocket echo, Python's standard library
only (a job's user runs the system's Python, without our packages).

It trusts only its proxy, as Fabriek's web apps must: a request without the job's secret
(`x-fabriek-web-secret` = $FABRIEK_WEB_SECRET) is answered 403. GET answers JSON saying what
it was shown; a WebSocket echoes each text message back, prefixed "echo: ".
"""

import base64
import hashlib
import http.server
import json
import os
import struct

SECRET = os.environ["FABRIEK_WEB_SECRET"]
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def read_frame(rfile):
    head = rfile.read(2)
    if len(head) < 2:
        return None, b""
    opcode, length = head[0] & 0x0F, head[1] & 0x7F
    if length == 126:
        length = struct.unpack(">H", rfile.read(2))[0]
    elif length == 127:
        length = struct.unpack(">Q", rfile.read(8))[0]
    mask = rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
    data = bytes(b ^ mask[i % 4] for i, b in enumerate(rfile.read(length)))
    return opcode, data


def frame(opcode, data):
    n = len(data)
    if n < 126:
        head = bytes([0x80 | opcode, n])
    elif n < 65536:
        head = bytes([0x80 | opcode, 126]) + struct.pack(">H", n)
    else:
        head = bytes([0x80 | opcode, 127]) + struct.pack(">Q", n)
    return head + data


class App(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.headers.get("x-fabriek-web-secret") != SECRET:
            body = b"not through Fabriek's proxy"
            self.send_response(403)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if self.headers.get("upgrade", "").lower() == "websocket":
            self.websocket()
            return
        body = json.dumps(
            {
                "path": self.path,
                "authorization": self.headers.get("authorization"),
                "cookie": self.headers.get("cookie"),
                "job": os.environ.get("FABRIEK_JOB_ID"),
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("x-app", "echo")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def websocket(self):
        key = self.headers["sec-websocket-key"]
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        self.send_response(101)
        self.send_header("upgrade", "websocket")
        self.send_header("connection", "Upgrade")
        self.send_header("sec-websocket-accept", accept)
        self.end_headers()
        self.wfile.flush()
        while True:
            opcode, data = read_frame(self.rfile)
            if opcode is None or opcode == 0x8:
                self.wfile.write(frame(0x8, data[:2]))
                self.wfile.flush()
                return
            if opcode == 0x9:
                self.wfile.write(frame(0xA, data))
            elif opcode in (0x1, 0x2):
                self.wfile.write(frame(opcode, b"echo: " + data))
            self.wfile.flush()
        self.close_connection = True


if __name__ == "__main__":
    port = int(os.environ["FABRIEK_WEB_PORT"])
    # The loopback, or where a Slurm site's jobs listen (the control plane is elsewhere).
    host = os.environ.get("FABRIEK_WEB_HOST", "127.0.0.1")
    print(f"listening on {host}:{port}", flush=True)
    http.server.ThreadingHTTPServer((host, port), App).serve_forever()
