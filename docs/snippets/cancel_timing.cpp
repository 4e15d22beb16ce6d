// docs/cancellation.md, "When the cancellation arrives": a task cancelled before its first step
// never runs; a running task (one that cancels itself) sees it at its next suspension.
#include <corio/corio.hpp>

#include <cstdio>

using namespace std::chrono_literals;

corio::task<> before_start() {
// [readme:before_start]
    bool ran = false;
    auto t = corio::create_task([&ran]() -> corio::task<> {
        ran = true;
        co_return;
    });
    t.cancel();                                     // its first step has not run yet
    co_await t.wait_done();
    std::printf("cancelled=%d, body ran=%d\n", t.cancelled(), ran);
// [/readme:before_start]
}

corio::task<int> one() { co_return 1; }

corio::task<> self_cancel() {
// [readme:self_cancel]
    auto t = corio::create_task([]() -> corio::task<> {
        corio::current_task().cancel();             // only a request: nothing is thrown yet
        int n = co_await one();                     // an inline await that does not suspend
        std::printf("still running, n=%d\n", n);
        co_await corio::sleep(1s);                  // the next suspension throws cancelled_error
        std::puts("never printed");
    });
    co_await t.wait_done();
    std::printf("cancelled=%d\n", t.cancelled());
// [/readme:self_cancel]
}

corio::task<> self_cancel_then_return() {
// [readme:self_cancel_return]
    auto t = corio::create_task([]() -> corio::task<int> {
        corio::current_task().cancel();
        co_return 7;                                // returns before it suspends again
    });
    co_await t.wait_done();
    std::printf("cancelled=%d, cancelling=%d\n", t.cancelled(), t.cancelling());
// [/readme:self_cancel_return]
}

corio::task<> main_coro() {
    co_await before_start();
    co_await self_cancel();
    co_await self_cancel_then_return();
}

int main() { corio::run(main_coro()); }

// out: cancelled=1, body ran=0
// out: still running, n=1
// out: cancelled=1
// out: cancelled=1, cancelling=1
