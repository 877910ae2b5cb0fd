#!/usr/bin/env python3
"""HTTP/1.1 hello-world server on asyncio (Protocol API), a peer in the HTTP
benchmark.

    http_asyncio.py [--port P] [--uvloop]

Keep-alive and pipelining: every complete request (up to its blank line) that
starts with "GET " gets the same 200 response with "Hello, World!"; anything
else, or a header block over 8 KiB, closes the connection. Request bodies are
not supported. Prints "listening on <port>" once ready (port 0 picks a free
port) and exits cleanly on SIGINT or SIGTERM.
"""
import argparse
import asyncio
import os
import resource
import signal
import sys

RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n"
            b"Content-Type: text/plain\r\n\r\nHello, World!")
HEADER_MAX = 8192


def use_uvloop():
    """Installs uvloop; see echo_asyncio.py for why it may re-exec."""
    try:
        import uvloop
    except ImportError:
        system = "/usr/bin/python3"
        if os.path.realpath(sys.executable) != os.path.realpath(system) and os.access(system, os.X_OK):
            os.execv(system, [system] + sys.argv)
        sys.exit("http_asyncio: --uvloop given but uvloop is not installed (python3-uvloop)")
    uvloop.install()


class Hello(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buf = b""

    def data_received(self, data):
        buf = self.buf + data if self.buf else data
        count = 0
        start = 0
        while True:
            end = buf.find(b"\r\n\r\n", start)
            if end < 0:
                break
            if not buf.startswith(b"GET ", start):
                self.transport.close()
                return
            count += 1
            start = end + 4
        rest = buf[start:]
        if len(rest) >= HEADER_MAX or (rest and not b"GET ".startswith(rest[:4])):
            self.transport.close()
            return
        self.buf = rest
        if count:
            # One write for the whole pipelined batch.
            self.transport.write(RESPONSE * count)

    def connection_lost(self, exc):
        self.transport = None


async def serve(port):
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set_result, None)
    server = await loop.create_server(Hello, "0.0.0.0", port, backlog=4096, reuse_address=True)
    print("listening on %d" % server.sockets[0].getsockname()[1], flush=True)
    await stop
    server.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--uvloop", action="store_true")
    args = ap.parse_args()
    # One descriptor per connection: allow as many as the hard limit does.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.uvloop:
        use_uvloop()
    asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
