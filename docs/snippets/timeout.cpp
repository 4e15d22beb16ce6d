// docs/cancellation.md, "Timeouts today": wait_for (wait_for.hpp) built from call_later + cancel.
#include "wait_for.hpp"

#include <cstdio>

using namespace std::chrono_literals;

corio::task<int> answer_after(std::chrono::milliseconds d) {
    co_await corio::sleep(d);
    co_return 42;
}

// [readme:timeout]
corio::task<> main_coro() {
    int a = co_await wait_for(answer_after(10ms), 1s);         // in time
    std::printf("answer: %d\n", a);
    try {
        co_await wait_for(answer_after(1h), 50ms);             // too slow
    } catch (const corio::timeout_error& e) {
        std::printf("timeout_error: %s\n", e.what());
    }
    // Cancelling the caller is not a timeout: the cancellation goes through.
    auto caller = corio::create_task(wait_for(answer_after(1h), 1h));
    co_await corio::sleep(0s);
    caller.cancel();
    co_await caller.wait_done();
    std::printf("caller cancelled=%d\n", caller.cancelled());
}
// [/readme:timeout]

int main() { corio::run(main_coro()); }

// out: answer: 42
// out: timeout_error: timed out
// out: caller cancelled=1
