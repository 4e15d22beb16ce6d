// docs/cancellation.md, "Timeouts": corio::wait_for, with_timeout and timeout_at. At the deadline
// the work is cancelled and awaited (its cleanup runs), then timeout_error is thrown; cancelling
// the caller stays a cancellation.
#include <corio/corio.hpp>

#include <chrono>
#include <cstdio>

using namespace std::chrono_literals;

corio::task<int> answer_after(std::chrono::milliseconds d) {
    co_await corio::sleep(d);
    co_return 42;
}

// [readme:slow]
corio::task<int> slow_with_cleanup() {
    bool cancelled = false;
    try {
        co_await corio::sleep(1h);
    } catch (const corio::cancelled_error&) {
        cancelled = true;                                       // no co_await in a handler
    }
    if (cancelled) {
        co_await corio::sleep(10ms);                            // asynchronous cleanup
        std::puts("work: cleaned up");
        throw corio::cancelled_error();
    }
    co_return 1;
}
// [/readme:slow]

// [readme:timeout]
corio::task<> main_coro() {
    int a = co_await corio::wait_for(answer_after(10ms), 1s);   // asyncio.wait_for(aw, 1)
    std::printf("wait_for: %d\n", a);
    try {
        co_await corio::wait_for(slow_with_cleanup(), 50ms);    // too slow
    } catch (const corio::timeout_error& e) {                   // after the work's cleanup
        std::printf("timeout_error: %s\n", e.what());
    }

    int b = co_await corio::with_timeout(1s, answer_after(10ms));   // async with timeout(1)
    auto& loop = corio::get_running_loop();
    int c = co_await corio::timeout_at(loop.time() + 1.0, answer_after(10ms));
    std::printf("with_timeout: %d, timeout_at: %d\n", b, c);

    // Cancelling the caller is not a timeout: the work is cancelled, awaited, and the caller
    // ends cancelled.
    auto caller = corio::create_task(corio::wait_for(slow_with_cleanup(), 1h));
    co_await corio::sleep(1ms);                                 // the work is sleeping now
    caller.cancel();
    co_await caller.wait_done();
    std::printf("caller cancelled=%d\n", caller.cancelled());
}
// [/readme:timeout]

int main() { corio::run(main_coro()); }

// out: wait_for: 42
// out: work: cleaned up
// out: timeout_error: timed out
// out: with_timeout: 42, timeout_at: 42
// out: work: cleaned up
// out: caller cancelled=1
