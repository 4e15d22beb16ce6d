// A hand-made asyncio.wait_for for docs/cancellation.md ("Timeouts today"), used by timeout.cpp
// and virtual_time.cpp. corio::wait_for itself is planned (see docs/porting.md).
#pragma once

#include <corio/corio.hpp>

#include <chrono>
#include <utility>

// [readme:wait_for]
// Runs `work` as a task; if it has not finished after `timeout`, cancels it, waits for it to
// finish, and throws corio::timeout_error (unless `work` swallowed the cancellation and
// returned a value: then that value, as asyncio.wait_for does).
template <class T, class Rep, class Period>
corio::task<T> wait_for(corio::task<T> work, std::chrono::duration<Rep, Period> timeout) {
    corio::task_handle<T> t = corio::create_task(std::move(work));
    bool expired = false;
    corio::timer_handle timer = corio::get_running_loop().call_later(timeout, [t, &expired]() mutable {
        expired = true;
        t.cancel("timeout");
    });
    struct cancel_timer {                           // the callback refers to this frame:
        corio::timer_handle& h;                     // take it off the loop on every way out
        ~cancel_timer() { h.cancel(); }
    } guard{timer};
    const int cancelling = corio::current_task().cancelling();
    try {
        co_return co_await t;
    } catch (const corio::cancelled_error&) {
        // The timer cancelled `t`, and nobody cancelled us meanwhile: that is a timeout.
        if (expired && corio::current_task().cancelling() == cancelling) throw corio::timeout_error();
        throw;
    }
}
// [/readme:wait_for]
