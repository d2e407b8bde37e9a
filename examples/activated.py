"""A server that takes its listening socket from `tenure run --socket` (socket activation):
fd 3, with LISTEN_FDS=1 and LISTEN_PID naming this process. It answers every GET with its
version; on SIGTERM it stops accepting and finishes what it accepted, leaving the queue to
its successor. Usage: tenure run --family web --version 2.0 --ports 9500-9509 --socket --
python3 examples/activated.py 2.0
"""

import http.server
import os
import signal
import socket
import sys
import threading

VERSION = sys.argv[1]
if os.environ.get("LISTEN_PID") != str(os.getpid()) or os.environ.get("LISTEN_FDS") != "1":
    sys.exit("not socket-activated: run me under `tenure run --socket`")


class Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = VERSION.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer, bind_and_activate=False)
server.daemon_threads = False  # a request accepted is a request answered
server.socket.close()
server.socket = socket.socket(fileno=3)  # the socket tenure bound and kept
signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
server.serve_forever()
server.server_close()
