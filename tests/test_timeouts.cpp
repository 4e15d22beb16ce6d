// corio::wait_for, with_timeout, timeout_at (asyncio.wait_for / timeout / timeout_at): values in
// time, expiry (cancel, wait for the cleanup, timeout_error), swallowed cancellations, results
// arriving together with the deadline, cancellation of the awaiting task at each await, zero
// and past deadlines, resource release.
#include <corio/timeouts.hpp>

#include <corio/future.hpp>
#include <corio/runners.hpp>
#include <corio/sleep.hpp>
#include <corio/task.hpp>
#include <corio/testing.hpp>

#include "support/helpers.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

using namespace std::chrono_literals;
using corio::task;

namespace {

task<int> value_after(std::chrono::milliseconds d, int v) {
    co_await corio::sleep(d);
    co_return v;
}

double now() { return corio::get_running_loop().time(); }

/// Sleeps `d`; when cancelled, logs, cleans up for `cleanup` (an await), logs, rethrows.
task<int> slow_with_cleanup(std::vector<std::string>& log, std::chrono::milliseconds d,
                            std::chrono::milliseconds cleanup) {
    bool cancelled = false;
    try {
        co_await corio::sleep(d);
    } catch (const corio::cancelled_error&) {
        cancelled = true;
    }
    if (cancelled) {
        log.push_back("inner cancelled");
        co_await corio::sleep(cleanup);
        log.push_back("inner cleaned up");
        throw corio::cancelled_error();
    }
    co_return 1;
}

/// What an await of a timeout combinator ended with, as text (never throws).
template <class T>
task<std::string> outcome(task<T> t) {
    try {
        if constexpr (std::is_void_v<T>) {
            co_await std::move(t);
            co_return "void";
        } else {
            auto v = co_await std::move(t);
            if constexpr (std::is_arithmetic_v<T>) co_return "value " + std::to_string(v);
            else co_return "value";
        }
    } catch (const corio::timeout_error&) {
        co_return "timeout_error";
    } catch (const corio::cancelled_error& e) {
        co_return std::string("cancelled_error ") + e.what();
    } catch (const std::exception& e) {
        co_return std::string("error ") + e.what();
    }
}

} // namespace

TEST_CASE("wait_for: a value in time is returned; the clock starts at the co_await") {
    corio::testing::run([]() -> task<> {
        auto w = corio::wait_for(value_after(10ms, 42), 1s); // lazy: the clock has not started
        co_await corio::sleep(5s);
        const double t0 = now();
        CHECK(co_await std::move(w) == 42);
        CHECK(now() - t0 == doctest::Approx(0.010));
        // A timer that is no longer needed is gone: the clock is not held at t0 + 1s.
        co_await corio::sleep(10s);
        CHECK(now() - t0 == doctest::Approx(10.010));
    });
}

TEST_CASE("wait_for: expiry cancels the work, waits for its cleanup, then throws timeout_error") {
    corio::testing::run([]() -> task<> {
        std::vector<std::string> log;
        const double t0 = now();
        try {
            co_await corio::wait_for(slow_with_cleanup(log, 1h, 3s), 2s);
            log.push_back("no timeout");
        } catch (const corio::timeout_error& e) {
            log.push_back(std::string("timeout_error: ") + e.what());
        }
        CHECK(log == std::vector<std::string>{"inner cancelled", "inner cleaned up", "timeout_error: timed out"});
        CHECK(now() - t0 == doctest::Approx(5.0)); // the deadline, then the cleanup
        CHECK(corio::current_task().cancelling() == 0);
    });
}

TEST_CASE("wait_for: work that swallows the cancellation and returns a value gives that value") {
    corio::testing::run([]() -> task<> {
        auto swallow = []() -> task<int> {
            try {
                co_await corio::sleep(1h);
            } catch (const corio::cancelled_error&) {
            }
            co_await corio::sleep(100ms);
            co_return 7;
        };
        CHECK(co_await corio::wait_for(swallow, 1s) == 7);
        CHECK(co_await corio::with_timeout(1s, swallow) == 7);
    });
}

TEST_CASE("wait_for: work that turns the cancellation into another error rethrows that error") {
    corio::testing::run([]() -> task<> {
        auto convert = []() -> task<int> {
            try {
                co_await corio::sleep(1h);
            } catch (const corio::cancelled_error&) {
                throw std::logic_error("cleanup failed");
            }
            co_return 0;
        };
        CHECK(co_await outcome(corio::wait_for(convert, 1s)) == "error cleanup failed");
    });
}

TEST_CASE("wait_for: errors of the work come through; nothing is reported as never retrieved") {
    corio_test::report_recorder rec;
    corio::testing::virtual_event_loop loop;
    rec.attach(loop);
    loop.run_until_complete([]() -> task<> {
        auto fails = []() -> task<int> {
            co_await corio::sleep(1s);
            throw std::runtime_error("bad");
        };
        CHECK(co_await outcome(corio::wait_for(fails, 1h)) == "error bad");
        // On a task handle, too.
        auto t = corio::create_task(fails);
        CHECK(co_await outcome(corio::wait_for(t, 1h)) == "error bad");
    });
    loop.close();
    CHECK(rec.reports.empty());
}

TEST_CASE("wait_for: a result that arrives together with the deadline is not lost") {
    corio::testing::run([]() -> task<> {
        auto& loop = corio::get_running_loop();
        // 1. A future completed by a timer due at the deadline (set before the wait_for).
        {
            corio::future<int> f;
            loop.call_later(1s, [f]() mutable { f.set_result(1); });
            CHECK(co_await outcome(corio::wait_for(f, 1s)) == "value 1");
        }
        // 2. A task whose own timer fires with the deadline (registered before it).
        {
            auto t = corio::create_task(value_after(1s, 2));
            co_await corio::sleep(0s);
            CHECK(co_await outcome(corio::wait_for(t, 1s)) == "value 2");
        }
        // 3. ... registered after the deadline's timer: it was woken, so it runs its step.
        {
            auto t = corio::create_task(value_after(1s, 3));
            CHECK(co_await outcome(corio::wait_for(t, 1s)) == "value 3");
        }
        // 4. A coroutine whose awaited future completes in the deadline's iteration.
        {
            corio::future<int> f;
            loop.call_later(1s, [f]() mutable { f.set_result(4); });
            auto read = [f]() -> task<int> { co_return co_await f; };
            CHECK(co_await outcome(corio::wait_for(read, 1s)) == "value 4");
        }
        // 5. Just after the deadline is too late.
        {
            corio::future<int> f;
            loop.call_later(1001ms, [f]() mutable {
                if (!f.done()) f.set_result(5);
            });
            CHECK(co_await outcome(corio::wait_for(f, 1s)) == "timeout_error");
            CHECK(f.cancelled());
        }
    });
}

TEST_CASE("cancelling the awaiting task cancels the work and throws cancelled_error") {
    corio::testing::run([]() -> task<> {
        std::vector<std::string> log;
        auto caller = corio::create_task([&log]() -> task<> {
            try {
                co_await corio::wait_for(slow_with_cleanup(log, 1h, 2s), 10s);
            } catch (const corio::timeout_error&) {
                log.push_back("timeout_error");
                throw;
            } catch (const corio::cancelled_error& e) {
                log.push_back(std::string("caller: cancelled_error ") + e.what());
                throw;
            }
        });
        co_await corio::sleep(1s);
        const double t0 = now();
        CHECK(caller.cancel("shutdown"));
        co_await caller.wait_done();
        CHECK(caller.cancelled());
        CHECK(now() - t0 == doctest::Approx(2.0)); // waited for the work's cleanup
        CHECK(log == std::vector<std::string>{"inner cancelled", "inner cleaned up",
                                              "caller: cancelled_error shutdown"});
    });
}

TEST_CASE("cancelling the awaiting task: the awaited task handle is cancelled too") {
    corio::testing::run([]() -> task<> {
        auto work = corio::create_task(value_after(1h, 1));
        auto caller = corio::create_task([work]() -> task<int> { co_return co_await corio::wait_for(work, 1h); });
        co_await corio::sleep(1s);
        caller.cancel();
        co_await caller.wait_done();
        CHECK(caller.cancelled());
        CHECK(work.cancelled());
    });
}

TEST_CASE("cancelled in the same iteration as the deadline: cancelled_error, not timeout_error") {
    corio::testing::run([]() -> task<> {
        auto caller = corio::create_task(outcome(corio::wait_for(value_after(1h, 1), 1s)));
        corio::get_running_loop().call_later(1s, [caller]() mutable { caller.cancel("both"); });
        CHECK(co_await caller == "cancelled_error both");
    });
}

TEST_CASE("cancelled during the cleanup that follows the deadline: cancelled_error") {
    corio::testing::run([]() -> task<> {
        std::vector<std::string> log;
        auto caller = corio::create_task(outcome(corio::wait_for(slow_with_cleanup(log, 1h, 10s), 1s)));
        co_await corio::sleep(2s); // deadline passed, the work is cleaning up
        CHECK(log == std::vector<std::string>{"inner cancelled"});
        caller.cancel("later");
        CHECK(co_await caller == "cancelled_error later");
        // The second cancellation reached the cleanup's sleep.
        CHECK(log == std::vector<std::string>{"inner cancelled"});
    });
}

TEST_CASE("cancelled when the work has finished but the caller has not resumed yet") {
    corio_test::report_recorder rec;
    corio::testing::virtual_event_loop loop;
    rec.attach(loop);
    loop.run_until_complete([]() -> task<> {
        corio::future<int> f;
        auto caller = corio::create_task(outcome(corio::wait_for(f, 1h)));
        co_await corio::sleep(0s);
        f.set_exception(std::make_exception_ptr(std::runtime_error("dropped"))); // wakes caller
        caller.cancel("late"); // before it resumes: the cancellation wins, the error is dropped
        CHECK(co_await caller == "cancelled_error late");
    });
    loop.close();
    CHECK(rec.reports.empty());
}

TEST_CASE("cancelling the awaiting task, the work swallows it and returns: the value") {
    corio::testing::run([]() -> task<> {
        auto swallow = []() -> task<int> {
            try {
                co_await corio::sleep(1h);
            } catch (const corio::cancelled_error&) {
            }
            co_return 9;
        };
        auto caller = corio::create_task(corio::wait_for(swallow, 1h));
        co_await corio::sleep(1s);
        caller.cancel();
        CHECK(co_await caller == 9);
        CHECK(caller.cancelling() == 1); // asyncio: the request is still counted
    });
}

TEST_CASE("the work cancelled by someone else: cancelled_error, not timeout_error") {
    corio::testing::run([]() -> task<> {
        auto t = corio::create_task(value_after(1h, 1));
        corio::get_running_loop().call_later(1s, [t]() mutable { t.cancel("other"); });
        CHECK(co_await outcome(corio::wait_for(t, 10s)) == "cancelled_error other");
    });
}

TEST_CASE("wait_for with a timeout <= 0: asyncio 3.12's special case") {
    corio::testing::run([]() -> task<> {
        // A coroutine never starts.
        bool started = false;
        auto body = [&started]() -> task<int> {
            started = true;
            co_return 1;
        };
        CHECK(co_await outcome(corio::wait_for(body, 0s)) == "timeout_error");
        CHECK(co_await outcome(corio::wait_for(body, -1s)) == "timeout_error");
        CHECK_FALSE(started);
        // A done future gives its result.
        corio::future<int> done;
        done.set_result(5);
        CHECK(co_await corio::wait_for(done, 0s) == 5);
        // A pending future is cancelled.
        corio::future<int> pending;
        CHECK(co_await outcome(corio::wait_for(pending, 0s)) == "timeout_error");
        CHECK(pending.cancelled());
        // A running task that swallows the cancellation gives its value.
        auto swallow = corio::create_task([]() -> task<int> {
            try {
                co_await corio::sleep(1h);
            } catch (const corio::cancelled_error&) {
            }
            co_return 6;
        });
        co_await corio::sleep(0s);
        CHECK(co_await corio::wait_for(swallow, 0s) == 6);
    });
}

TEST_CASE("with_timeout(0) lets the work run until its first suspension (asyncio.timeout(0))") {
    corio::testing::run([]() -> task<> {
        std::vector<std::string> log;
        auto body = [&log]() -> task<> {
            log.push_back("started");
            co_await corio::sleep(0s);
            log.push_back("after sleep(0)");
        };
        CHECK(co_await outcome(corio::with_timeout(0s, body)) == "timeout_error");
        CHECK(log == std::vector<std::string>{"started"});
        // Work that finishes in its first step is not cancelled.
        auto quick = []() -> task<int> { co_return 3; };
        CHECK(co_await corio::with_timeout(0s, quick) == 3);
    });
}

TEST_CASE("with_timeout: in time, expiry after the cleanup, void results") {
    corio::testing::run([]() -> task<> {
        CHECK(co_await corio::with_timeout(1s, value_after(500ms, 8)) == 8);
        std::vector<std::string> log;
        const double t0 = now();
        CHECK(co_await outcome(corio::with_timeout(1s, slow_with_cleanup(log, 1h, 1s))) == "timeout_error");
        CHECK(now() - t0 == doctest::Approx(2.0));
        CHECK(log == std::vector<std::string>{"inner cancelled", "inner cleaned up"});
        auto nothing = []() -> task<> { co_await corio::sleep(1s); };
        CHECK(co_await outcome(corio::with_timeout(2s, nothing)) == "void");
        CHECK(co_await outcome(corio::with_timeout(500ms, nothing)) == "timeout_error");
    });
}

TEST_CASE("timeout_at takes loop time: deadlines ahead, exactly hit, and already passed") {
    corio::testing::run([]() -> task<> {
        auto& loop = corio::get_running_loop();
        const double t0 = loop.time();
        CHECK(co_await corio::timeout_at(t0 + 2.0, value_after(1s, 1)) == 1);
        CHECK(co_await outcome(corio::timeout_at(t0 + 2.5, value_after(1h, 1))) == "timeout_error");
        CHECK(loop.time() - t0 == doctest::Approx(2.5));
        // Passed already: runs until its first suspension, then is cancelled.
        bool started = false;
        auto body = [&started]() -> task<int> {
            started = true;
            co_await corio::sleep(1s);
            co_return 1;
        };
        CHECK(co_await outcome(corio::timeout_at(t0, body)) == "timeout_error");
        CHECK(started);
        CHECK(loop.time() - t0 == doctest::Approx(2.5));
    });
}

TEST_CASE("nested deadlines: the inner one's timeout_error goes through the outer one") {
    corio::testing::run([]() -> task<> {
        const double t0 = now();
        auto inner = []() -> task<int> { co_return co_await corio::wait_for(value_after(1h, 1), 1s); };
        CHECK(co_await outcome(corio::wait_for(inner, 10s)) == "timeout_error"); // the inner's
        CHECK(now() - t0 == doctest::Approx(1.0));
        // The outer deadline first: the inner wait_for is cancelled (cancelled_error inside),
        // and the outer reports timeout_error.
        auto inner2 = []() -> task<int> { co_return co_await corio::wait_for(value_after(1h, 1), 10s); };
        CHECK(co_await outcome(corio::wait_for(inner2, 1s)) == "timeout_error");
        CHECK(now() - t0 == doctest::Approx(2.0));
    });
}

TEST_CASE("wait_for accepts futures, task handles, callables; move-only and void results") {
    corio::testing::run([]() -> task<> {
        corio::future<std::unique_ptr<int>> f;
        corio::get_running_loop().call_later(1s, [f]() mutable { f.set_result(std::make_unique<int>(4)); });
        std::unique_ptr<int> p = co_await corio::wait_for(std::move(f), 2s);
        CHECK(*p == 4);
        auto t = corio::create_task(value_after(1s, 5));
        CHECK(co_await corio::wait_for(t, 2s) == 5);
        auto make = []() -> task<std::unique_ptr<int>> { co_return std::make_unique<int>(6); };
        CHECK(*co_await corio::wait_for(make, 1s) == 6);
        corio::future<> v;
        v.set_result();
        co_await corio::wait_for(v, 1s);
        corio::task_handle<int> empty;
        CHECK_THROWS_AS(co_await corio::wait_for(empty, 1s), corio::invalid_state_error);
    });
}

TEST_CASE("nothing leaks: values, frames and tasks are released on every path") {
    corio_test::counted::reset();
    corio::testing::run([]() -> task<> {
        auto make = [](std::chrono::milliseconds d) {
            return [d]() -> task<corio_test::counted> {
                co_await corio::sleep(d);
                co_return corio_test::counted(1);
            };
        };
        auto quick = make(1ms);
        auto slow = make(1h);
        corio_test::counted c = co_await corio::wait_for(quick, 1s);
        CHECK(c.value == 1);
        CHECK(co_await outcome(corio::wait_for(slow, 1s)) == "timeout_error");
        auto caller = corio::create_task(corio::wait_for(slow, 1h));
        co_await corio::sleep(1s);
        caller.cancel();
        co_await caller.wait_done();
        CHECK(corio_test::counted::alive() == 1); // just `c`
    });
    CHECK(corio_test::counted::alive() == 0);
}

TEST_CASE("a wait_for destroyed by loop close() leaves nothing registered") {
    corio_test::report_recorder rec;
    std::optional<corio::future<int>> kept;
    {
        corio::testing::virtual_event_loop loop;
        rec.attach(loop);
        corio::future<int> f(loop);
        kept = f;
        loop.create_task([f]() -> task<int> { co_return co_await corio::wait_for(f, 1h); });
        loop.run_until_complete([]() -> task<> { co_await corio::sleep(1s); });
        loop.close();
        CHECK(rec.count("Task was destroyed but it is pending!") == 1);
    }
    kept.reset();
}

TEST_CASE("cancelled while it lets the woken work take its step at the deadline") {
    corio::testing::run([]() -> task<> {
        // The work wakes with the deadline (its timer set after it), cancels the caller in that
        // step, and goes on waiting: the caller passes the cancellation on, waits, and throws
        // cancelled_error.
        corio::task_handle<std::string> caller;
        bool work_cancelled = false;
        auto body = [&caller, &work_cancelled]() -> task<int> {
            co_await corio::sleep(1s);
            caller.cancel("from the step");
            try {
                co_await corio::sleep(1h);
            } catch (const corio::cancelled_error&) {
                work_cancelled = true;
                throw;
            }
            co_return 1;
        };
        caller = corio::create_task(outcome(corio::wait_for(body, 1s)));
        CHECK(co_await caller == "cancelled_error from the step");
        CHECK(work_cancelled);
        // Same, but the work finishes in that step: the cancellation still wins.
        auto finisher = [&caller]() -> task<int> {
            co_await corio::sleep(1s);
            caller.cancel("finished anyway");
            co_return 2;
        };
        caller = corio::create_task(outcome(corio::wait_for(finisher, 1s)));
        CHECK(co_await caller == "cancelled_error finished anyway");
    });
}

TEST_CASE("cancelled during the first step that with_timeout(0) lets the work take") {
    corio::testing::run([]() -> task<> {
        corio::task_handle<std::string> caller;
        bool work_cancelled = false;
        auto body = [&caller, &work_cancelled]() -> task<> {
            caller.cancel("first step");
            try {
                co_await corio::sleep(1h);
            } catch (const corio::cancelled_error&) {
                work_cancelled = true;
                throw;
            }
        };
        caller = corio::create_task(outcome(corio::with_timeout(0s, body)));
        CHECK(co_await caller == "cancelled_error first step");
        CHECK(work_cancelled);
    });
}

TEST_CASE("cancelling the awaiting task cancels an awaited plain future at once") {
    corio::testing::run([]() -> task<> {
        corio::future<int> f;
        auto caller = corio::create_task(outcome(corio::wait_for(f, 1h)));
        co_await corio::sleep(1s);
        caller.cancel("go");
        CHECK(co_await caller == "cancelled_error go");
        CHECK(f.cancelled());
    });
}
