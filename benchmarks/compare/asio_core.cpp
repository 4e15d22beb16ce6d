// Standalone Asio versions of corio's core benchmarks (benchmarks/bench_core.cpp),
// for a side-by-side comparison. Not part of the CMake/meson build: see run.sh.
//
//   g++ -std=c++20 -O2 -DNDEBUG -pthread asio_core.cpp -o asio_core
//
// Asio 1.22 (Debian 12) turns co_await support on by itself for g++ -std=c++20.
// For clang it only looks for <experimental/coroutine>, so clang++-16 needs
// -DASIO_HAS_CO_AWAIT=1 -DASIO_HAS_STD_COROUTINE=1.
//
// Every workload runs on one single-threaded io_context, 3 times; the best
// (minimum) of the 3 is printed.
#include <asio.hpp>
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#if !defined(ASIO_HAS_CO_AWAIT)
#error "no Asio co_await support: use g++ -std=c++20, or clang with -DASIO_HAS_CO_AWAIT=1 -DASIO_HAS_STD_COROUTINE=1"
#endif

using Clock = std::chrono::steady_clock;

static double ms_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

static void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "asio_core: check failed: %s\n", what);
        std::exit(1);
    }
}

// Heap bytes in use: small chunks (uordblks) plus mmap'ed big chunks (hblkhd),
// so a large vector that glibc serves with mmap is counted too.
static long heap_in_use() {
    struct mallinfo2 mi = mallinfo2();
    return static_cast<long>(mi.uordblks + mi.hblkhd);
}

// ---- 1. spawn: mirrors corio's spawn benchmark --------------------------
// Create n tasks that each return their index, collect every result, check the sum.
static asio::awaitable<int> value_task(int i) { co_return i; }

static double bench_spawn(int n) {
    asio::io_context io(1);
    long long sum = 0;
    auto t0 = Clock::now();
    for (int i = 0; i < n; ++i)
        asio::co_spawn(io, value_task(i), [&](std::exception_ptr e, int v) {
            check(!e, "spawn task threw");
            sum += v;
        });
    io.run();
    double ms = ms_since(t0);
    check(sum == static_cast<long long>(n) * (n - 1) / 2, "spawn sum");
    return ms;
}

// ---- 2. switch: mirrors corio's sleep(0) switch benchmark ---------------
// `tasks` tasks each yield to the loop `yields` times (the idiomatic Asio yield:
// post a continuation of ourselves to our executor).
static asio::awaitable<void> yield_task(int yields, long long& done) {
    auto ex = co_await asio::this_coro::executor;
    for (int k = 0; k < yields; ++k) {
        co_await asio::post(ex, asio::use_awaitable);
        ++done;
    }
}

static double bench_switch(int tasks, int yields) {
    asio::io_context io(1);
    long long done = 0;
    auto t0 = Clock::now();
    for (int t = 0; t < tasks; ++t)
        asio::co_spawn(io, yield_task(yields, done), asio::detached);
    io.run();
    double ms = ms_since(t0);
    check(done == static_cast<long long>(tasks) * yields, "switch count");
    return ms;
}

// ---- 3. timers: mirrors corio's many-sleepers benchmark -----------------
// Task i sleeps i * (1 s / n), so the n sleeps are spread over one second.
// One steady_timer per task, living in the coroutine frame.
struct TimerResult { double ms; double bytes_per_task; };

static asio::awaitable<void> sleep_task(int i, int n, int& asleep) {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    timer.expires_after(std::chrono::nanoseconds(1'000'000'000LL * i / n));
    ++asleep;
    co_await timer.async_wait(asio::use_awaitable);
    --asleep;
}

static TimerResult bench_timers(int n) {
    asio::io_context io(1);
    { asio::steady_timer warm(io); }     // create the timer service up front
    int asleep = 0;
    long before = heap_in_use();
    long during = 0;
    auto t0 = Clock::now();
    for (int i = 0; i < n; ++i)
        asio::co_spawn(io, sleep_task(i, n, asleep), asio::detached);
    // co_spawn starts tasks in FIFO order, so this probe runs right after the
    // last sleeper has started waiting.
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
        check(asleep == n, "not all timer tasks asleep at the probe");
        during = heap_in_use();
        co_return;
    }, asio::detached);
    io.run();
    double ms = ms_since(t0);
    check(asleep == 0, "timer tasks left asleep");
    return {ms, static_cast<double>(during - before) / n};
}

// Each run's time goes to stderr ("# ..."), so the noise can be seen.
static void note_run(const char* what, int rep, double ms) {
    std::fprintf(stderr, "# asio %s run %d: %.1f ms\n", what, rep + 1, ms);
}

int main() {
    constexpr int reps = 3;
    constexpr int spawn_n = 1'000'000;
    constexpr int switch_tasks = 1'000, switch_yields = 1'000;
    constexpr int timer_n = 100'000;

    double best = 1e300;
    for (int r = 0; r < reps; ++r) {
        double ms = bench_spawn(spawn_n);
        note_run("spawn", r, ms);
        best = std::min(best, ms);
    }
    std::printf("asio spawn %d tasks: %.1f ms (%.1f ns/task)\n",
                spawn_n, best, best * 1e6 / spawn_n);
    std::fflush(stdout);

    const int switches = switch_tasks * switch_yields;
    best = 1e300;
    for (int r = 0; r < reps; ++r) {
        double ms = bench_switch(switch_tasks, switch_yields);
        note_run("switch", r, ms);
        best = std::min(best, ms);
    }
    std::printf("asio switch %d switches: %.1f ms (%.1f ns/switch)\n",
                switches, best, best * 1e6 / switches);
    std::fflush(stdout);

    // Wall time: best of 3. Memory: exact heap bytes (not RSS), so it barely
    // varies between runs; the smallest is printed.
    TimerResult bt{1e300, 1e300};
    for (int r = 0; r < reps; ++r) {
        TimerResult t = bench_timers(timer_n);
        note_run("timers", r, t.ms);
        bt.ms = std::min(bt.ms, t.ms);
        bt.bytes_per_task = std::min(bt.bytes_per_task, t.bytes_per_task);
    }
    std::printf("asio timers %d tasks: %.1f ms wall, %.0f bytes/sleeping task\n",
                timer_n, bt.ms, bt.bytes_per_task);
    return 0;
}
