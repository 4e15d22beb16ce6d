// Core runtime benchmarks: spawn, switch, timers. The same workloads are run against Asio,
// asyncio and uvloop by benchmarks/compare/ (see benchmarks/README.md for figures).
#include <corio/corio.hpp>

#include <benchmark/benchmark.h>

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <vector>

using namespace std::chrono_literals;
using corio::task;

namespace {

// Figures are "best of 3" like benchmarks/compare/: on this VM the first touch of a page costs
// ~15 us, so a cold run mostly measures the kernel. The min statistic is what the docs quote.
double minimum(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }

/// Heap bytes in use (small blocks + mmapped ones, as benchmarks/compare/asio_core.cpp counts).
std::size_t heap_in_use() {
    struct mallinfo2 m = mallinfo2();
    return m.uordblks + m.hblkhd;
}

task<int> index_of(int i) { co_return i; }

// spawn: create N tasks, each returning its index, then await them all.
task<std::int64_t> spawn_all(int n) {
    std::vector<corio::task_handle<int>> tasks;
    tasks.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) tasks.push_back(corio::create_task(index_of(i)));
    std::int64_t sum = 0;
    for (auto& t : tasks) sum += co_await t;
    co_return sum;
}

void BM_spawn(benchmark::State& state) {
    const int n = static_cast<int>(state.range(0));
    for (auto _ : state) {
        std::int64_t sum = corio::run(spawn_all(n));
        if (sum != std::int64_t(n) * (n - 1) / 2) throw std::logic_error("wrong sum");
        benchmark::DoNotOptimize(sum);
    }
    state.SetItemsProcessed(state.iterations() * n);
    state.counters["ns_per_task"] = benchmark::Counter(
        static_cast<double>(state.iterations() * n), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_spawn)->Arg(1'000'000)->Unit(benchmark::kMillisecond)->UseRealTime()
    ->Iterations(1)->Repetitions(3)->ComputeStatistics("min", minimum);

// switch: T tasks each yield (sleep(0)) K times; every yield is one trip through the loop.
task<> yielder(int k) {
    for (int i = 0; i < k; ++i) co_await corio::sleep(0s);
}

task<> switch_all(int tasks, int k) {
    std::vector<corio::task_handle<>> ts;
    ts.reserve(static_cast<std::size_t>(tasks));
    for (int i = 0; i < tasks; ++i) ts.push_back(corio::create_task(yielder(k)));
    for (auto& t : ts) co_await t;
}

void BM_switch(benchmark::State& state) {
    const int tasks = static_cast<int>(state.range(0)), k = static_cast<int>(state.range(1));
    for (auto _ : state) corio::run(switch_all(tasks, k));
    const double switches = static_cast<double>(state.iterations()) * tasks * k;
    state.SetItemsProcessed(static_cast<std::int64_t>(switches));
    state.counters["ns_per_switch"] =
        benchmark::Counter(switches, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_switch)->Args({1000, 1000})->Unit(benchmark::kMillisecond)->UseRealTime()
    ->Repetitions(3)->ComputeStatistics("min", minimum);

// timers: N tasks, task i sleeps i * (1 s / N); wall time (just over 1 s) and heap bytes per
// sleeping task (everything a sleeping task costs: its state, frame and timer entry).
struct timer_result {
    double bytes_per_task;
};

task<timer_result> sleep_all(int n) {
    std::vector<corio::task_handle<>> ts;
    ts.reserve(static_cast<std::size_t>(n));
    const std::size_t before = heap_in_use(); // the handles' vector is the benchmark's, not corio's
    for (int i = 0; i < n; ++i) {
        ts.push_back(corio::create_task([](int i, int n) -> task<> {
            co_await corio::sleep(std::chrono::nanoseconds(std::int64_t(1'000'000'000) * i / n));
        }(i, n)));
    }
    co_await corio::sleep(0s); // every task has started and is asleep now
    const std::size_t asleep = heap_in_use();
    for (auto& t : ts) co_await t;
    co_return timer_result{static_cast<double>(asleep - before) / n};
}

void BM_timers(benchmark::State& state) {
    const int n = static_cast<int>(state.range(0));
    double bytes = 0;
    for (auto _ : state) bytes = corio::run(sleep_all(n)).bytes_per_task;
    state.counters["bytes_per_sleeping_task"] = bytes;
    state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_timers)->Arg(100'000)->Unit(benchmark::kMillisecond)->UseRealTime()
    ->Iterations(1)->Repetitions(3)->ComputeStatistics("min", minimum);

// Not in the list, but it is what every `co_await f()` costs: an inline await of a
// coroutine that completes at once (frame allocation + trampoline transfer both ways).
task<std::int64_t> inline_awaits(int n) {
    std::int64_t s = 0;
    for (int i = 0; i < n; ++i) s += co_await index_of(i);
    co_return s;
}

void BM_inline_await(benchmark::State& state) {
    const int n = static_cast<int>(state.range(0));
    for (auto _ : state) benchmark::DoNotOptimize(corio::run(inline_awaits(n)));
    const double awaits = static_cast<double>(state.iterations()) * n;
    state.counters["ns_per_await"] =
        benchmark::Counter(awaits, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_inline_await)->Arg(1'000'000)->Unit(benchmark::kMillisecond)->UseRealTime()
    ->Repetitions(3)->ComputeStatistics("min", minimum);

// A million pending timers stay cheap: schedule them (random deadlines), then cancel them all.
void BM_timer_heap(benchmark::State& state) {
    const int n = static_cast<int>(state.range(0));
    std::vector<corio::timer_handle> hs;
    hs.reserve(static_cast<std::size_t>(n));
    std::uint64_t x = 88172645463325252ull; // xorshift: no <random> in the timed loop
    for (auto _ : state) {
        corio::event_loop loop;
        for (int i = 0; i < n; ++i) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            hs.push_back(loop.call_later(std::chrono::microseconds(x % 10'000'000), [] {}));
        }
        for (auto& h : hs) h.cancel();
        hs.clear();
    }
    const double ops = static_cast<double>(state.iterations()) * n;
    state.counters["ns_per_schedule_and_cancel"] =
        benchmark::Counter(ops, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_timer_heap)->Arg(1'000'000)->Unit(benchmark::kMillisecond)->UseRealTime()
    ->Repetitions(3)->ComputeStatistics("min", minimum);

} // namespace

BENCHMARK_MAIN();
