// shield: cancelling the waiter leaves the shielded work running; its result stays available;
// the await throws at once. Expected behaviour checked against asyncio 3.11/3.12 (python3
// scripts in the report of issue #3).
#include <corio/shield.hpp>

#include <corio/future.hpp>
#include <corio/gather.hpp>
#include <corio/runners.hpp>
#include <corio/sleep.hpp>
#include <corio/task.hpp>
#include <corio/testing.hpp>

#include "support/helpers.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using corio::task;
using corio_test::counted;
using corio_test::report_recorder;

namespace {

using log_t = std::vector<std::string>;

task<int> value_after(int v, std::chrono::milliseconds d, log_t* log = nullptr) {
    try {
        co_await corio::sleep(d);
    } catch (const corio::cancelled_error&) {
        if (log) log->push_back("inner cancelled");
        throw;
    }
    if (log) log->push_back("inner done");
    co_return v;
}

task<int> fail_after(const char* what, std::chrono::milliseconds d) {
    co_await corio::sleep(d);
    throw std::runtime_error(what);
}

task<std::unique_ptr<int>> make_unique_after(int v, std::chrono::milliseconds d) {
    co_await corio::sleep(d);
    co_return std::make_unique<int>(v);
}

task<counted> make_counted(int v, std::chrono::milliseconds d) {
    co_await corio::sleep(d);
    co_return counted(v);
}

/// Awaits `shield(inner)`; logs what happened.
template <class T>
task<> shielded_waiter(corio::task_handle<T> inner, log_t& log) {
    try {
        T v = co_await corio::shield(inner);
        log.push_back("waiter got " + std::to_string(v));
    } catch (const corio::cancelled_error& e) {
        log.push_back(std::string("waiter cancelled: ") + e.what());
        throw;
    }
}

task<int> forever() {
    co_await corio::sleep(std::chrono::hours(24 * 365));
    co_return 0;
}

double now() { return corio::get_running_loop().time(); }

} // namespace

TEST_CASE("shield passes the value, or the error, through") {
    corio::testing::run([]() -> task<> {
        CHECK(co_await corio::shield(value_after(1, 1ms)) == 1);
        auto t = corio::create_task(value_after(2, 1ms));
        CHECK(co_await corio::shield(t) == 2);
        corio::future<std::string> f;
        corio::get_running_loop().call_later(1ms, [f]() mutable { f.set_result("three"); });
        CHECK(co_await corio::shield(f) == "three");
        CHECK(f.result() == "three"); // copied: still there for others
        CHECK_THROWS_WITH_AS(co_await corio::shield(fail_after("boom", 1ms)), "boom", std::runtime_error);
        auto p = co_await corio::shield(make_unique_after(4, 1ms)); // move-only, moved out
        CHECK(*p == 4);
        auto fn = []() -> task<> { co_await corio::sleep(1ms); };
        co_await corio::shield(fn);
    });
}

TEST_CASE("the awaiting task is cancelled: the await throws at once, the inner task goes on") {
    corio::testing::run([]() -> task<> {
        log_t log;
        auto inner = corio::create_task(value_after(7, 100ms, &log));
        auto waiter = corio::create_task(shielded_waiter(inner, log));
        co_await corio::sleep(10ms);
        const double t0 = now();
        CHECK(waiter.cancel("stop"));
        co_await waiter.wait_done();
        CHECK(now() == doctest::Approx(t0)); // not when the inner task finishes
        CHECK(waiter.cancelled());
        CHECK_FALSE(inner.done());
        CHECK(log == log_t{"waiter cancelled: stop"});
        CHECK(co_await inner == 7); // its result is not lost
        CHECK(log == log_t{"waiter cancelled: stop", "inner done"});
        CHECK_FALSE(inner.cancelling());
    });
}

TEST_CASE("two waiters shield one task; one is cancelled, the other gets the result") {
    corio::testing::run([]() -> task<> {
        log_t log;
        auto inner = corio::create_task(value_after(5, 50ms, &log));
        auto a = corio::create_task(shielded_waiter(inner, log));
        auto b = corio::create_task(shielded_waiter(inner, log));
        co_await corio::sleep(1ms);
        a.cancel();
        co_await b;
        CHECK(a.cancelled());
        CHECK(log == log_t{"waiter cancelled: cancelled", "inner done", "waiter got 5"});
    });
}

TEST_CASE("a shielded coroutine runs to its end after the waiter is cancelled") {
    report_recorder rec;
    corio::testing::run([&rec]() -> task<> {
        rec.attach(corio::get_running_loop());
        log_t log;
        auto waiter = corio::create_task([&log]() -> task<> {
            co_await corio::shield(value_after(3, 20ms, &log)); // the task is shield's own
        });
        co_await corio::sleep(1ms);
        waiter.cancel();
        co_await waiter.wait_done();
        CHECK(log.empty());
        co_await corio::sleep(50ms);
        CHECK(log == log_t{"inner done"});
    });
    CHECK(rec.reports.empty());
}

TEST_CASE("an error after the waiter was cancelled is not retrieved by shield (asyncio 3.12)") {
    report_recorder rec;
    corio::testing::run([&rec]() -> task<> {
        rec.attach(corio::get_running_loop());
        auto waiter = corio::create_task([]() -> task<> { co_await corio::shield(fail_after("late", 20ms)); });
        co_await corio::sleep(1ms);
        waiter.cancel();
        co_await waiter.wait_done();
        co_await corio::sleep(50ms);
    });
    REQUIRE(rec.count("Task exception was never retrieved") == 1);
    CHECK_THROWS_WITH_AS(std::rethrow_exception(rec.reports[0].exception), "late", std::runtime_error);
}

TEST_CASE("the shielded task cancelled by someone else: the await throws its cancelled_error") {
    corio::testing::run([]() -> task<> {
        log_t log;
        auto inner = corio::create_task(value_after(1, 1s, &log));
        auto waiter = corio::create_task(shielded_waiter(inner, log));
        co_await corio::sleep(1ms);
        inner.cancel("from elsewhere");
        co_await waiter.wait_done();
        CHECK(waiter.cancelled());
        CHECK(log == log_t{"inner cancelled", "waiter cancelled: from elsewhere"});
    });
}

TEST_CASE("shield of a future that is already done gives its value without suspending") {
    corio::testing::run([]() -> task<> {
        corio::future<int> f;
        f.set_result(11);
        CHECK(co_await corio::shield(f) == 11);
        // Even with a cancellation pending: an await that does not suspend does not deliver it.
        auto t = corio::create_task([f]() -> task<int> {
            corio::current_task().cancel();
            int v = co_await corio::shield(f);
            CHECK(v == 11);
            co_await corio::sleep(1s); // the next suspension throws
            co_return v;
        });
        co_await t.wait_done();
        CHECK(t.cancelled());
        corio::future<int> failed;
        failed.set_exception(std::make_exception_ptr(std::runtime_error("old")));
        CHECK_THROWS_WITH_AS(co_await corio::shield(failed), "old", std::runtime_error);
        corio::future<int> cancelled;
        cancelled.cancel("gone");
        CHECK_THROWS_WITH_AS(co_await corio::shield(cancelled), "gone", corio::cancelled_error);
    });
}

TEST_CASE("cancellation arriving at each point of a shield's await") {
    corio::testing::run([]() -> task<> {
        log_t log;
        // 1. Requested while the waiter runs, before it reaches the shield: thrown at the
        //    shield's suspension; the inner task is not touched.
        auto inner1 = corio::create_task(value_after(1, 10ms, &log));
        auto w1 = corio::create_task([inner1]() -> task<> {
            corio::current_task().cancel();
            co_await corio::shield(inner1);
        });
        co_await w1.wait_done();
        CHECK(w1.cancelled());
        CHECK(co_await inner1 == 1);

        // 2. Requested after the inner task finished, before the waiter resumed: the await
        //    throws; the value stays in the task.
        corio::future<int> f;
        auto w2 = corio::create_task([f]() -> task<int> { co_return co_await corio::shield(f); });
        co_await corio::sleep(0s);
        f.set_result(2); // w2 is queued
        CHECK(w2.cancel());
        co_await w2.wait_done();
        CHECK(w2.cancelled());
        CHECK(f.result() == 2);

        // 3. The waiter catches the cancellation, then awaits the same task again.
        auto inner3 = corio::create_task(value_after(3, 20ms));
        auto w3 = corio::create_task([inner3]() -> task<int> {
            bool cancelled = false;
            try {
                co_await corio::shield(inner3);
            } catch (const corio::cancelled_error&) {
                cancelled = true;
            }
            CHECK(cancelled);
            co_return co_await corio::shield(inner3);
        });
        co_await corio::sleep(1ms);
        w3.cancel();
        CHECK(co_await w3 == 3);
        CHECK(log == log_t{"inner done"});
    });
}

TEST_CASE("a shield inside gather: cancelling the gather's waiter spares the shielded task") {
    corio::testing::run([]() -> task<> {
        log_t log;
        auto precious = corio::create_task(value_after(1, 50ms, &log));
        auto waiter = corio::create_task([precious]() -> task<> {
            auto s = corio::shield(precious);
            co_await corio::gather(std::move(s), forever());
        });
        co_await corio::sleep(1ms);
        waiter.cancel();
        co_await waiter.wait_done();
        CHECK(waiter.cancelled());
        CHECK_FALSE(precious.done());
        CHECK(co_await precious == 1);
    });
}

TEST_CASE("shield releases what it holds") {
    counted::reset();
    corio::testing::run([]() -> task<> {
        {
            counted c = co_await corio::shield(make_counted(1, 1ms));
            CHECK(c.value == 1);
        }
        auto waiter = corio::create_task([]() -> task<> { co_await corio::shield(make_counted(2, 10ms)); });
        co_await corio::sleep(1ms);
        waiter.cancel();
        co_await waiter.wait_done();
        co_await corio::sleep(20ms); // the shielded task finished; nobody holds its value
        CHECK(counted::alive() == 0);
    });
    CHECK(counted::alive() == 0);
}

TEST_CASE("invalid uses") {
    corio::run([]() -> task<> {
        corio::task_handle<int> empty;
        CHECK_THROWS_AS(co_await corio::shield(empty), corio::invalid_state_error);
    });
    CHECK_THROWS_AS((void)corio::shield(value_after(1, 0ms)), std::runtime_error); // no running loop
}
