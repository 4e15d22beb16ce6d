#!/usr/bin/env python3
"""A Python asyncio client for examples/sort_service (standard library only).

The protocol of "sorting as a service" (seeds/003): an 8-byte big-endian length, then that many
bytes of JSON, an array of numbers; the answer is framed the same way. The server sorts with the
article's gnome sort, which is stable, so its answer must be exactly json.dumps(sorted(nums)).

usage: sort_client.py HOST PORT MODE [ARG]
  check             sends [5, 3, 9, 1, -2.5, 1e3], expects [-2.5, 1, 3, 5, 9, 1000.0]
  concurrent N      N clients at once, each with its own random array of ints and floats
  responsive N      a long sort (N numbers, reversed, more if that is too fast) and, while
                    it runs, short ones: one must be answered before the long one (the sort
                    runs off the event loop)
  long N            one request of N numbers, reversed (for the shutdown test; no check)
  refused KIND      a request the server must refuse by closing the connection without an
                    answer: KIND is garbage, nested, string, nan, trailing, empty, oversize
                    (a header announcing LIMIT+1 bytes, ARG = LIMIT), short (the header only,
                    then EOF)
  hangup            connects and closes at once; then half a header and closes
Exits 0 on success, 1 with a message on stderr otherwise.
"""

import asyncio
import json
import random
import sys


def frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(8, "big") + payload


async def request(host, port, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(frame(payload))
        await writer.drain()
        length = await reader.readexactly(8)
        return await reader.readexactly(int.from_bytes(length, "big"))
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


async def sort_and_check(host, port, nums, who="client"):
    answer = await request(host, port, json.dumps(nums).encode())
    expected = json.dumps(sorted(nums))
    if answer.decode() != expected:
        raise AssertionError(f"{who}: sent {json.dumps(nums)[:200]}\n"
                             f"  expected {expected[:200]}\n  got      {answer[:200]!r}")
    return answer


async def check(host, port):
    nums = [5, 3, 9, 1, -2.5, 1e3]
    answer = await request(host, port, b"[5, 3, 9, 1, -2.5, 1e3]")
    if answer != b"[-2.5, 1, 3, 5, 9, 1000.0]":
        raise AssertionError(f"got {answer!r}")
    if json.loads(answer) != sorted(nums):
        raise AssertionError("not sorted")
    # the empty array, one number, and exact int/float ordering
    for nums in ([], [42], [2 ** 53 + 1, 2.0 ** 53, -0.0, 0, 1e-7, -1e300, 0.1, 1]):
        await sort_and_check(host, port, nums)
    print("check: ok")


def random_numbers(rng, n):
    out = []
    for _ in range(n):
        if rng.random() < 0.5:
            out.append(rng.randint(-10 ** 6, 10 ** 6))
        else:
            out.append(rng.uniform(-1e6, 1e6) * 10 ** rng.randint(-20, 20))
    return out


async def concurrent(host, port, n):
    rng = random.Random(2015)
    arrays = [random_numbers(rng, rng.randint(0, 600)) for _ in range(n)]
    await asyncio.gather(*(sort_and_check(host, port, a, f"client {i}")
                           for i, a in enumerate(arrays)))
    print(f"concurrent: {n} clients ok")


async def responsive(host, port, n):
    """A long sort, and short requests every 20 ms meanwhile: one of them must be answered
    while the long sort still runs. The sort is O(n^2), so its length depends on the build
    (Debug + sanitizers or optimized): n doubles until the long sort outlasts a short request."""
    for _ in range(6):
        big = list(range(n, 0, -1))
        long_task = asyncio.ensure_future(sort_and_check(host, port, big, "long request"))
        await asyncio.sleep(0.05)  # let the long request reach the executor
        answered_meanwhile = False
        while not long_task.done():
            await sort_and_check(host, port, [3, 1, 2], "short request")
            if not long_task.done():
                answered_meanwhile = True
                break
            await asyncio.sleep(0.02)
        await asyncio.wait_for(long_task, 120)
        if answered_meanwhile:
            print(f"responsive: a short request was answered during a sort of {n} numbers")
            return
        n *= 2
    raise AssertionError(f"no short request was answered while a long sort ran (up to {n} numbers)")


async def long_request(host, port, n):
    try:
        await request(host, port, json.dumps(list(range(n, 0, -1))).encode())
    except (OSError, asyncio.IncompleteReadError):
        pass  # the server may go away first: that is what the shutdown test does


REFUSED = {
    "garbage": b"this is not json",
    "nested": b"[1, [2, 3]]",
    "string": b'[1, "2"]',
    "nan": b"[1, NaN]",
    "trailing": b"[1, 2,]",
    "empty": b"",
    "binary": bytes(range(256)),
}


async def refused(host, port, kind, arg):
    reader, writer = await asyncio.open_connection(host, port)
    if kind == "oversize":
        writer.write((int(arg) + 1).to_bytes(8, "big") + b"[1, 2, 3]")
    elif kind == "short":
        writer.write(b"\0\0\0")
        writer.write_eof()
    else:
        writer.write(frame(REFUSED[kind]))
    try:
        await writer.drain()
    except OSError:
        pass
    try:
        data = await asyncio.wait_for(reader.read(), 10)
    except (ConnectionResetError, BrokenPipeError):
        data = b""  # closed with our bytes unread: a reset is a close too
    writer.close()
    if data:
        raise AssertionError(f"refused {kind}: expected the connection closed, got {data[:80]!r}")
    print(f"refused {kind}: closed without an answer")


async def hangup(host, port):
    _, writer = await asyncio.open_connection(host, port)
    writer.close()
    _, writer = await asyncio.open_connection(host, port)
    writer.write(b"\0\0\0\0")
    await writer.drain()
    writer.close()
    print("hangup: ok")


def main():
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    host, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    arg = sys.argv[4] if len(sys.argv) > 4 else None
    try:
        if mode == "check":
            asyncio.run(check(host, port))
        elif mode == "concurrent":
            asyncio.run(concurrent(host, port, int(arg)))
        elif mode == "responsive":
            asyncio.run(responsive(host, port, int(arg)))
        elif mode == "long":
            asyncio.run(long_request(host, port, int(arg)))
        elif mode == "refused":
            kind, _, limit = arg.partition(":")
            asyncio.run(refused(host, port, kind, limit))
        elif mode == "hangup":
            asyncio.run(hangup(host, port))
        else:
            print(f"sort_client.py: unknown mode {mode}", file=sys.stderr)
            return 2
    except Exception as e:  # noqa: BLE001 - any failure is a test failure
        print(f"sort_client.py {mode}: FAIL: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
