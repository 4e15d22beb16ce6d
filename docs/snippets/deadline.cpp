// docs/cancellation.md, "cancelling() and uncancel()": a deadline for the current task, as
// asyncio.timeout() builds it: cancel the task itself when the deadline passes, then use
// uncancel() to tell that cancellation from one that came from elsewhere.
#include <corio/corio.hpp>

#include <cstdio>
#include <string>

using namespace std::chrono_literals;

corio::task<std::string> slow_fetch() {
    co_await corio::sleep(5s);
    co_return "data";
}

// [readme:deadline]
corio::task<std::string> fetch_with_deadline(std::chrono::milliseconds deadline) {
    corio::task_ref me = corio::current_task();
    const int cancelling = me.cancelling();         // requests pending before ours
    bool expired = false;
    corio::timer_handle timer = corio::get_running_loop().call_later(deadline, [me, &expired]() mutable {
        expired = true;
        me.cancel("deadline");                      // cancels this very task
    });
    struct cancel_timer {
        corio::timer_handle& h;
        ~cancel_timer() { h.cancel(); }
    } guard{timer};
    try {
        co_return co_await slow_fetch();
    } catch (const corio::cancelled_error&) {
        // Withdraw our request; if none other is left, this was the deadline.
        if (expired && me.uncancel() <= cancelling) throw corio::timeout_error("deadline passed");
        throw;
    }
}
// [/readme:deadline]

corio::task<> main_coro() {
    auto t = corio::create_task(fetch_with_deadline(20ms));
    co_await t.wait_done();
    try {
        t.result();
    } catch (const corio::timeout_error& e) {
        std::printf("%s; cancelled=%d, cancelling=%d\n", e.what(), t.cancelled(), t.cancelling());
    }
    // A cancel() from outside stays a cancellation, and is still counted.
    auto u = corio::create_task(fetch_with_deadline(1h));
    co_await corio::sleep(0s);
    u.cancel();
    co_await u.wait_done();
    std::printf("cancelled=%d, cancelling=%d\n", u.cancelled(), u.cancelling());
}

int main() { corio::run(main_coro()); }

// out: deadline passed; cancelled=0, cancelling=0
// out: cancelled=1, cancelling=1
