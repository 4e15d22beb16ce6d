// docs/cancellation.md, "Where cancelled_error is thrown": cancel() throws corio::cancelled_error
// into the task at the co_await where it is suspended; the task ends cancelled.
#include <corio/corio.hpp>

#include <cassert>
#include <cstdio>
#include <stdexcept>

using namespace std::chrono_literals;

// [readme:worker]
corio::task<> worker() {
    std::puts("worker: sleeping for an hour");
    try {
        co_await corio::sleep(1h);                  // cancel() throws cancelled_error here
    } catch (const std::runtime_error&) {           // not a std::runtime_error: not caught
        std::puts("never printed");
    }
    std::puts("never printed either");
}

corio::task<> main_coro() {
    auto t = corio::create_task(worker());
    co_await corio::sleep(0s);                      // let the worker reach its sleep
    bool requested = t.cancel("shutting down");     // true: t was not done
    co_await t.wait_done();                         // wait until it has finished
    std::printf("requested=%d cancelled=%d\n", requested, t.cancelled());
    try {
        t.result();                                 // rethrows the cancelled_error
    } catch (const corio::cancelled_error& e) {
        std::printf("result(): %s\n", e.what());    // the message given to cancel()
    }
}
// [/readme:worker]

int main() { corio::run(main_coro()); }

// out: worker: sleeping for an hour
// out: requested=1 cancelled=1
// out: result(): shutting down
