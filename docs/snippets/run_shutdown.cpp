// docs/cancellation.md, "When main returns": corio::run cancels the tasks still pending, waits
// for them to finish (their cleanup may await), reports errors they end with, then closes the
// loop.
#include <corio/corio.hpp>

#include <cstdio>
#include <exception>
#include <stdexcept>

using namespace std::chrono_literals;

// [readme:shutdown]
corio::task<> flusher() {
    bool cancelled = false;
    try {
        co_await corio::sleep(1h);
    } catch (const corio::cancelled_error&) {
        cancelled = true;
    }
    if (cancelled) {
        co_await corio::sleep(10ms);                // e.g. write out what is buffered
        std::puts("flusher: flushed");
        throw corio::cancelled_error();
    }
}

corio::task<> fragile() {
    try {
        co_await corio::sleep(1h);
    } catch (const corio::cancelled_error&) {
        throw std::runtime_error("could not clean up");   // reported, not thrown by run()
    }
}

corio::task<> main_coro() {
    corio::get_running_loop().set_exception_handler(
        [](corio::event_loop&, const corio::exception_context& ctx) {
            std::printf("handler: %s [task %s]\n", ctx.message.c_str(), ctx.task_name.c_str());
        });
    corio::create_task(flusher(), "flusher");       // nobody keeps these handles
    corio::create_task(fragile(), "fragile");
    co_await corio::sleep(0s);
    std::puts("main: done");
}

int main() {
    corio::run(main_coro());
    std::puts("run() returned");
}
// [/readme:shutdown]

// out: main: done
// out: flusher: flushed
// out: handler: unhandled exception during corio::run() shutdown [task fragile]
// out: run() returned
