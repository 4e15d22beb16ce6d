// docs/cancellation.md, "Cleaning up": C++ forbids co_await inside a catch block, so a task that
// must await during its cleanup records the cancellation, cleans up after the handler, and
// rethrows it.
#include <corio/corio.hpp>

#include <cstdio>
#include <exception>

using namespace std::chrono_literals;

corio::task<> say_goodbye() {                       // some asynchronous cleanup
    co_await corio::sleep(10ms);
    std::puts("connection: goodbye sent");
}

// [readme:cleanup]
corio::task<> connection() {
    std::exception_ptr cancelled;
    try {
        co_await corio::sleep(1h);                  // serving...
    } catch (const corio::cancelled_error&) {
        cancelled = std::current_exception();       // no co_await in here
    }
    if (cancelled) {
        co_await say_goodbye();                     // awaiting works again after the handler
        std::rethrow_exception(cancelled);          // the task ends cancelled, with its message
    }
}
// [/readme:cleanup]

corio::task<> main_coro() {
    auto t = corio::create_task(connection());
    co_await corio::sleep(0s);
    t.cancel("server closing");
    co_await t.wait_done();
    try {
        t.result();
    } catch (const corio::cancelled_error& e) {
        std::printf("cancelled=%d: %s\n", t.cancelled(), e.what());
    }
}

int main() { corio::run(main_coro()); }

// out: connection: goodbye sent
// out: cancelled=1: server closing
