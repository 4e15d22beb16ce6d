#!/usr/bin/python3
"""asyncio / uvloop versions of corio's core benchmarks (benchmarks/bench_core.cpp).

    /usr/bin/python3 asyncio_core.py --loop asyncio|uvloop [--no-gc]

Each workload runs in a fresh event loop, 3 times; the best (minimum) is printed.
A spawn run that takes more than 5 s is not repeated (a '#' note says so).
The timers workload runs first, while the process is fresh: its memory figure
is RSS growth (/proc/self/statm), which memory freed by an earlier workload
and kept by the allocator would hide.
"""
import argparse
import asyncio
import gc
import os
import sys
import time

REPS = 3
SLOW_RUN_S = 5.0
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes():
    # Resident set size from /proc/self/statm (second field, in pages).
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


# ---- 1. spawn: mirrors corio's spawn benchmark ---------------------------
# Create n tasks that each return their index, then await each in turn and sum.
async def value_task(i):
    return i


async def spawn(n):
    t0 = time.perf_counter()
    tasks = [asyncio.create_task(value_task(i)) for i in range(n)]
    total = 0
    for t in tasks:
        total += await t
    ms = (time.perf_counter() - t0) * 1e3
    if total != n * (n - 1) // 2:
        sys.exit(f"spawn: wrong sum {total}")
    return ms


# ---- 2. switch: mirrors corio's sleep(0) switch benchmark ----------------
async def yield_task(yields):
    for _ in range(yields):
        await asyncio.sleep(0)


async def switch(tasks, yields):
    t0 = time.perf_counter()
    await asyncio.gather(*(yield_task(yields) for _ in range(tasks)))
    return (time.perf_counter() - t0) * 1e3


# ---- 3. timers: mirrors corio's many-sleepers benchmark ------------------
# Task i sleeps i * (1 s / n): n sleeps spread over one second.
async def timers(n):
    before = rss_bytes()
    t0 = time.perf_counter()
    tasks = [asyncio.create_task(asyncio.sleep(i / n)) for i in range(n)]
    await asyncio.sleep(0)  # every task has now started and is asleep
    during = rss_bytes()
    await asyncio.gather(*tasks)
    ms = (time.perf_counter() - t0) * 1e3
    return ms, (during - before) / n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    ap.add_argument("--no-gc", action="store_true",
                    help="disable the cyclic GC (it is on by default, as for any program)")
    args = ap.parse_args()
    if args.no_gc:
        gc.disable()

    if args.loop == "uvloop":
        import uvloop
        new_loop = uvloop.new_event_loop
    else:
        new_loop = asyncio.new_event_loop

    name = args.loop + ("-nogc" if args.no_gc else "")

    def run(what, coro):
        with asyncio.Runner(loop_factory=new_loop) as runner:
            result = runner.run(coro)
        if isinstance(result, tuple):  # timers: (ms, bytes per task)
            note = f"{result[0]:.1f} ms, {result[1]:.0f} bytes/task"
        else:
            note = f"{result:.1f} ms"
        print(f"# {name} {what} run: {note}", file=sys.stderr, flush=True)
        return result

    n = 100_000
    walls, mems = [], []
    for _ in range(REPS):
        wall, mem = run("timers", timers(n))
        walls.append(wall)
        mems.append(mem)
    # Memory: the first run only; later runs reuse memory the first one freed.
    print(f"{name} timers {n} tasks: {min(walls):.1f} ms wall, "
          f"{mems[0]:.0f} bytes/sleeping task", flush=True)

    n = 1_000_000
    runs = []
    while len(runs) < REPS:
        runs.append(run("spawn", spawn(n)))
        if runs[-1] > SLOW_RUN_S * 1e3:
            print(f"# {name} spawn: best of {len(runs)} (a run took > {SLOW_RUN_S:.0f} s)",
                  file=sys.stderr)
            break
    best = min(runs)
    print(f"{name} spawn {n} tasks: {best:.1f} ms ({best * 1e6 / n:.1f} ns/task)", flush=True)

    tasks, yields = 1_000, 1_000
    n = tasks * yields
    best = min(run("switch", switch(tasks, yields)) for _ in range(REPS))
    print(f"{name} switch {n} switches: {best:.1f} ms ({best * 1e6 / n:.1f} ns/switch)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
