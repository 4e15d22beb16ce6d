#!/usr/bin/python3
"""asyncio / uvloop echo server of the side-by-side networking benchmark (run_net.sh).

    /usr/bin/python3 asyncio_echo.py [--loop asyncio|uvloop] [--streams] [--port 0]

Without --streams: a Protocol whose data_received writes the data back (loop.create_server).
With --streams: asyncio.start_server, each handler loops reader.read(65536) -> writer.write ->
await writer.drain(). Prints the real port on stdout, then serves until SIGINT/SIGTERM.
"""
import argparse
import asyncio
import signal
import sys


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def handle(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    writer.close()


async def main(args):
    loop = asyncio.get_running_loop()
    if args.streams:
        server = await asyncio.start_server(handle, "127.0.0.1", args.port, backlog=1024)
    else:
        server = await loop.create_server(Echo, "127.0.0.1", args.port, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    stop = loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set_result, None)
    await stop
    server.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    ap.add_argument("--streams", action="store_true", help="asyncio.start_server instead of a Protocol")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    if args.loop == "uvloop":
        import uvloop
        factory = uvloop.new_event_loop
    else:
        factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main(args))
    sys.exit(0)
