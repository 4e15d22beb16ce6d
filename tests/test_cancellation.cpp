// Cancellation: cancel() throws cancelled_error into the coroutine at the await where it is
// suspended, whatever it awaits; the coroutine may clean up; state and results follow asyncio.
#include <corio/task.hpp>

#include <corio/future.hpp>
#include <corio/runners.hpp>
#include <corio/sleep.hpp>
#include <corio/testing.hpp>

#include "support/helpers.hpp"

#include <doctest/doctest.h>

#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using corio::task;

namespace {

// The task is created by corio_test::spawn (a plain function), and the coroutine below takes an
// lvalue reference and a `const char*`: see GCC PR 100611 in test_compiler_traps.cpp.

/// Lets `t` reach its first suspension, cancels it, and waits until it finished.
template <class T>
task<> cancel_once_started(corio::task_handle<T>& t, const char* msg = "") {
    co_await corio::sleep(0s);
    CHECK(t.cancel(msg));
    co_await t.wait_done();
}

} // namespace

TEST_CASE("cancel at a sleep: cancelled_error at the await, the task ends cancelled") {
    corio::testing::run([]() -> task<> {
        std::vector<std::string> log;
        auto t = corio_test::spawn([&]() -> task<> {
            log.push_back("start");
            co_await corio::sleep(1h);
            log.push_back("not reached");
        });
        co_await cancel_once_started(t);
        CHECK(t.cancelled());
        CHECK(log == std::vector<std::string>{"start"});
        CHECK_THROWS_AS(t.result(), corio::cancelled_error);
    });
}

TEST_CASE("cancel at sleep(0) while queued") {
    corio::run([]() -> task<> {
        int reached = 0;
        auto t = corio::create_task([&]() -> task<> {
            ++reached;
            co_await corio::sleep(0s);
            ++reached;
            co_await corio::sleep(0s);
            ++reached;
        });
        co_await corio::sleep(0s); // t suspended at its first sleep(0), queued again
        t.cancel();
        co_await t.wait_done();
        CHECK(t.cancelled());
        CHECK(reached == 1);
    });
}

TEST_CASE("cancel at a future: the awaited future is cancelled too (asyncio)") {
    corio::run([]() -> task<> {
        corio::future<int> f;
        auto t = corio_test::spawn([f]() -> task<> { co_await f; });
        co_await cancel_once_started(t, "bye");
        CHECK(t.cancelled());
        CHECK(f.cancelled());
        try {
            t.result();
        } catch (const corio::cancelled_error& e) {
            CHECK(e.message() == "bye");
        }
    });
}

TEST_CASE("cancel at a nested task await reaches the innermost await") {
    corio::testing::run([]() -> task<> {
        std::vector<std::string> log;
        auto inner = [&]() -> task<> {
            try {
                co_await corio::sleep(1h);
            } catch (const corio::cancelled_error&) {
                log.push_back("inner cleanup");
                throw;
            }
        };
        auto middle = [&]() -> task<> {
            try {
                co_await inner();
            } catch (const corio::cancelled_error&) {
                log.push_back("middle cleanup");
                throw;
            }
        };
        auto t = corio_test::spawn(middle);
        co_await cancel_once_started(t);
        CHECK(t.cancelled());
        CHECK(log == std::vector<std::string>{"inner cleanup", "middle cleanup"});
    });
}

TEST_CASE("cancelling a task that awaits another task cancels that task") {
    corio::testing::run([]() -> task<> {
        auto child = corio::create_task([]() -> task<int> {
            co_await corio::sleep(1h);
            co_return 1;
        });
        auto parent = corio_test::spawn([child]() -> task<> { co_await child; });
        co_await cancel_once_started(parent);
        CHECK(parent.cancelled());
        CHECK(child.cancelled());
    });
}

TEST_CASE("a coroutine may catch the cancellation, clean up, await more, and return") {
    corio::testing::run([]() -> task<> {
        std::vector<std::string> log;
        auto t = corio::create_task([&]() -> task<int> {
            try {
                co_await corio::sleep(1h);
            } catch (const corio::cancelled_error&) {
                log.push_back("caught");
            }
            co_await corio::sleep(1s); // awaiting after a cancellation works
            log.push_back("cleaned up");
            co_return 7;
        });
        co_await corio::sleep(0s);
        CHECK(t.cancel());
        CHECK(co_await t == 7);
        CHECK_FALSE(t.cancelled());
        CHECK(log == std::vector<std::string>{"caught", "cleaned up"});
    });
}

TEST_CASE("cancelling a finished task returns false and changes nothing") {
    corio::run([]() -> task<> {
        auto t = corio::create_task([]() -> task<int> { co_return 3; });
        CHECK(co_await t == 3);
        CHECK_FALSE(t.cancel());
        CHECK_FALSE(t.cancelled());
        CHECK(t.result() == 3);
    });
}

TEST_CASE("a task cancelled before it starts never runs its body") {
    corio::run([]() -> task<> {
        bool ran = false;
        auto t = corio::create_task([&]() -> task<> {
            ran = true;
            co_return;
        });
        CHECK(t.cancel());
        CHECK_THROWS_AS(co_await t, corio::cancelled_error);
        CHECK(t.cancelled());
        CHECK_FALSE(ran);
    });
}

TEST_CASE("catch (std::runtime_error&) does not swallow cancellation") {
    static_assert(!std::is_base_of_v<std::runtime_error, corio::cancelled_error>);
    static_assert(std::is_base_of_v<std::exception, corio::cancelled_error>);
    corio::testing::run([]() -> task<> {
        bool swallowed = false;
        auto t = corio_test::spawn([&]() -> task<> {
            try {
                co_await corio::sleep(1h);
            } catch (const std::runtime_error&) {
                swallowed = true;
            }
        });
        co_await cancel_once_started(t);
        CHECK(t.cancelled());
        CHECK_FALSE(swallowed);
    });
}

TEST_CASE("a task that cancels itself is cancelled at its next suspension") {
    corio::testing::run([]() -> task<> {
        std::vector<std::string> log;
        auto t = corio::create_task([&]() -> task<> {
            CHECK(corio::current_task().cancel());
            log.push_back("still running");
            int x = co_await []() -> task<int> { co_return 1; }(); // does not suspend
            log.push_back("inline await " + std::to_string(x));
            try {
                co_await corio::sleep(1s);
            } catch (const corio::cancelled_error&) {
                log.push_back("cancelled at sleep");
                throw;
            }
        });
        co_await t.wait_done();
        CHECK(t.cancelled());
        CHECK(log == std::vector<std::string>{"still running", "inline await 1", "cancelled at sleep"});
    });
}

TEST_CASE("a task woken by its future but cancelled before it runs sees the cancellation") {
    corio::run([]() -> task<> {
        corio::future<int> f;
        auto t = corio::create_task([f]() -> task<int> { co_return co_await f; });
        co_await corio::sleep(0s); // t waits on f
        f.set_result(5);           // t is queued
        CHECK(t.cancel());         // ... and cancelled before its step
        CHECK_THROWS_AS(co_await t, corio::cancelled_error);
        CHECK(f.result() == 5); // the future itself is untouched
    });
}

TEST_CASE("cancelling() counts requests and uncancel() withdraws one") {
    corio::testing::run([]() -> task<> {
        auto t = corio::create_task([]() -> task<> {
            for (;;) {
                try {
                    co_await corio::sleep(1s);
                    co_return;
                } catch (const corio::cancelled_error&) {
                    if (corio::current_task().uncancel() > 0) throw;
                }
            }
        });
        co_await corio::sleep(0s);
        CHECK(t.cancel());
        CHECK(t.cancelling() == 1);
        co_await t; // it uncancelled and finished normally
        CHECK_FALSE(t.cancelled());
        CHECK(t.cancelling() == 0);
    });
}

TEST_CASE("a cancelled waiter on wait_done leaves the awaited task running") {
    corio::testing::run([]() -> task<> {
        auto worker = corio::create_task([]() -> task<int> {
            co_await corio::sleep(2s);
            co_return 4;
        });
        auto watcher = corio_test::spawn([worker]() -> task<> {
            co_await worker.wait_done();
        });
        co_await cancel_once_started(watcher);
        CHECK(watcher.cancelled());
        CHECK_FALSE(worker.done());
        CHECK(co_await worker == 4);
    });
}

TEST_CASE("run cancels leftover tasks and waits for their cleanup before closing") {
    std::vector<std::string> log;
    corio::run([&]() -> task<> {
        corio::create_task([&]() -> task<> {
            bool cancelled = false;
            try {
                co_await corio::sleep(1h);
            } catch (const corio::cancelled_error&) {
                log.push_back("leftover cancelled");
                cancelled = true;
            }
            if (cancelled) { // cleanup may still await (not inside the handler: C++ forbids it)
                co_await corio::sleep(1ms);
                log.push_back("leftover cleaned up");
                throw corio::cancelled_error();
            }
        });
        co_await corio::sleep(0s);
        log.push_back("main done");
    });
    CHECK(log == std::vector<std::string>{"main done", "leftover cancelled", "leftover cleaned up"});
}

TEST_CASE("a task that cancels itself and returns without suspending ends cancelled (asyncio)") {
    corio::run([]() -> task<> {
        auto returns = corio::create_task([]() -> task<int> {
            corio::current_task().cancel("bye");
            co_return 1;
        });
        auto raises = corio::create_task([]() -> task<int> {
            corio::current_task().cancel();
            throw std::invalid_argument("boom");
            co_return 0;
        });
        co_await returns.wait_done();
        co_await raises.wait_done();
        CHECK(returns.cancelled());
        CHECK(returns.cancelling() == 1);
        try {
            returns.result();
            FAIL("not cancelled");
        } catch (const corio::cancelled_error& e) {
            CHECK(e.message() == "bye");
        }
        CHECK_FALSE(raises.cancelled()); // an exception wins over the pending cancellation
        CHECK_THROWS_AS(raises.result(), std::invalid_argument);
    });
}
