#!/usr/bin/env python3
"""Echo server on asyncio (Protocol API), a peer in the echo benchmarks.

    echo_asyncio.py [--port P] [--uvloop]

Prints "listening on <port>" once ready (port 0 picks a free port) and exits
cleanly on SIGINT or SIGTERM. The Protocol API is used rather than streams
because it is what a fast asyncio server uses: no coroutine per read.
"""
import argparse
import asyncio
import os
import resource
import signal
import sys


def use_uvloop():
    """Installs uvloop's event loop policy.

    When this interpreter has no uvloop (a pyenv or venv python3 first on
    PATH), re-executes the script under Debian's python3, whose python3-uvloop
    package the benchmark suite installs; exec keeps the PID, so a caller that
    measures this process still measures the server.
    """
    try:
        import uvloop
    except ImportError:
        system = "/usr/bin/python3"
        if os.path.realpath(sys.executable) != os.path.realpath(system) and os.access(system, os.X_OK):
            os.execv(system, [system] + sys.argv)
        sys.exit("echo_asyncio: --uvloop given but uvloop is not installed (python3-uvloop)")
    uvloop.install()


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)

    def connection_lost(self, exc):
        self.transport = None


async def serve(port):
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set_result, None)
    server = await loop.create_server(Echo, "0.0.0.0", port, backlog=4096, reuse_address=True)
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
