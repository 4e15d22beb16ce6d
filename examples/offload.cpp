// offload: "Dive into Python's asyncio, part 2" (seeds/004). "There is exactly one rule - do not
// block the event loop!" A CPU-heavy function called straight from a coroutine freezes every
// other task until it returns; handed to the default thread pool with run_in_executor, it runs
// while the loop keeps serving. A heartbeat task shows which is which.
//
// The article gives the last line; the rest is the scene around it:
//
//   def heavy_calculus():                            | long heavy_calculus() {
//       return count_primes(LIMIT)  # CPU only       |     return count_primes(limit);
//                                                    | }
//   async def heartbeat():                           | corio::task<> heartbeat() {
//       global beats                                 |
//       while True:                                  |     for (;;) {
//           beats += 1                               |         ++beats;
//           await asyncio.sleep(0.005)               |         co_await corio::sleep(5ms);
//                                                    |     }
//                                                    | }
//   async def main():                                | corio::task<> main_coro() {
//       loop = asyncio.get_running_loop()            |     auto& loop = corio::get_running_loop();
//       beat = asyncio.create_task(heartbeat())      |     auto beat = corio::create_task(heartbeat());
//       result = heavy_calculus()      # blocks      |     long r = heavy_calculus();
//       # executor=None causes asyncio to use default pool of threads
//       result = await loop.run_in_executor(executor=None, func=heavy_calculus)
//                                                    |     r = co_await loop.run_in_executor(nullptr, heavy_calculus);
//       beat.cancel()                                |     beat.cancel();
//                                                    | }
//   asyncio.run(main())                              | corio::run(main_coro());
//
// `co_await corio::to_thread(heavy_calculus)` (asyncio.to_thread) is the short form of the same
// call. The article's other idea, sprinkling `await asyncio.sleep(0)` through the calculation,
// lets other tasks in now and then, but the loop is still busy for most of the time: C++ has no
// GIL, so the thread pool truly runs the work beside the loop.
//
// Usage: offload [--limit N]   (count the primes below N; 500000 by default, about 0.2 s)

#include <corio/corio.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

using namespace std::chrono_literals;

long limit = 500000;
int beats = 0; // only the loop's thread touches it

// Deliberately naive trial division: plain CPU work, no await anywhere.
long heavy_calculus() {
    long count = 0;
    for (long i = 2; i < limit; ++i) {
        bool prime = true;
        for (long d = 2; d * d <= i; ++d) {
            if (i % d == 0) {
                prime = false;
                break;
            }
        }
        count += prime;
    }
    return count;
}

corio::task<> heartbeat() {
    for (;;) {
        ++beats;
        co_await corio::sleep(5ms);
    }
}

void report(const char* how, long result, int beats_meanwhile) {
    std::printf("%s\n", how);
    std::printf("  primes below %ld: %ld\n", limit, result);
    std::printf("  heartbeat meanwhile: %s\n",
                beats_meanwhile > 0 ? "kept beating (the loop kept serving)"
                                    : "none (the loop was frozen)");
}

corio::task<> main_coro() {
    auto& loop = corio::get_running_loop();
    auto beat = corio::create_task(heartbeat());
    co_await corio::sleep(10ms); // the heartbeat is going

    int before = beats;
    long result = heavy_calculus(); // blocks: no other task can run until it returns
    report("heavy_calculus() called in a coroutine:", result, beats - before);

    before = beats;
    // executor=nullptr: the loop's default thread pool (created on first use)
    result = co_await loop.run_in_executor(nullptr, heavy_calculus);
    report("heavy_calculus() in the default executor:", result, beats - before);

    beat.cancel();
}

[[noreturn]] void usage(const char* argv0, int code) {
    std::fprintf(code ? stderr : stdout,
                 "usage: %s [--limit N]\n"
                 "  Do not block the event loop ('Dive into Python's asyncio, part 2'): counts\n"
                 "  the primes below N (500000 by default) twice, first called straight from a\n"
                 "  coroutine, then in the default executor (loop.run_in_executor), while a\n"
                 "  heartbeat task shows whether the loop kept serving.\n",
                 argv0);
    std::exit(code);
}

int main(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
            usage(argv[0], 0);
        } else if (!std::strcmp(argv[i], "--limit") && i + 1 < argc) {
            char* end = nullptr;
            limit = std::strtol(argv[++i], &end, 10);
            if (!*argv[i] || *end || limit < 2) {
                std::fprintf(stderr, "%s: bad limit '%s'\n", argv[0], argv[i]);
                return 2;
            }
        } else {
            usage(argv[0], 2);
        }
    }
    corio::run(main_coro());
}
