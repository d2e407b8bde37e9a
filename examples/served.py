"""A daemon with a port under `tenure.hold`: it serves TENURE_PORT while it holds the lease."""

import os
import socket
import sys

import tenure

with tenure.hold("indexer", version=sys.argv[1]) as held, socket.socket() as server:
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", int(os.environ["TENURE_PORT"])))
    server.listen(8)
    server.settimeout(0.2)
    while not held.retiring.is_set():
        try:
            server.accept()[0].close()  # one unit of "work" per connection
        except TimeoutError:
            continue
