// Leak reports, as asyncio words them, through the loop's exception handler.
#include <corio/task.hpp>

#include <corio/runners.hpp>
#include <corio/sleep.hpp>

#include "support/helpers.hpp"

#include <doctest/doctest.h>

#include <stdexcept>

using namespace std::chrono_literals;
using corio::task;

TEST_CASE("closing a loop with a pending task reports it and destroys its frame") {
    corio_test::counted::reset();
    corio_test::report_recorder rec;
    {
        corio::event_loop loop;
        rec.attach(loop);
        auto t = loop.create_task([](corio_test::counted) -> task<> {
            co_await corio::sleep(1h);
        }(corio_test::counted(1)), "sleeper");
        loop.run_until_complete([]() -> task<> { co_await corio::sleep(1ms); });
        CHECK(corio_test::counted::alive() == 1);
        loop.close();
        CHECK(corio_test::counted::alive() == 0); // frame (and its parameter) destroyed
        CHECK(t.cancelled());                     // the handle outlives it, safely
    }
    REQUIRE(rec.count("Task was destroyed but it is pending!") == 1);
    CHECK(rec.reports[0].task_name == "sleeper");
}

TEST_CASE("in debug mode the report says where the task was created") {
    corio_test::report_recorder rec;
    corio::event_loop loop({.debug = true});
    rec.attach(loop);
    loop.create_task([]() -> task<> { co_await corio::sleep(1h); });
    loop.close();
    REQUIRE(rec.reports.size() == 1);
    CHECK(rec.reports[0].message.find("created at") != std::string::npos);
    CHECK(rec.reports[0].message.find("test_leaks.cpp") != std::string::npos);
}

TEST_CASE("a task's exception that nobody retrieves is reported once the task is dropped") {
    corio_test::report_recorder rec;
    corio::event_loop loop;
    rec.attach(loop);
    loop.run_until_complete([]() -> task<> {
        corio::create_task([]() -> task<> { // fire and forget
            throw std::runtime_error("lost");
            co_return;
        }, "forgotten");
        co_await corio::sleep(1ms);
    });
    REQUIRE(rec.count("Task exception was never retrieved") == 1);
    CHECK(rec.reports[0].task_name == "forgotten");
    CHECK_THROWS_WITH_AS(std::rethrow_exception(rec.reports[0].exception), "lost", std::runtime_error);
}

TEST_CASE("a retrieved exception is not reported; neither is a cancellation") {
    corio_test::report_recorder rec;
    corio::event_loop loop;
    rec.attach(loop);
    loop.run_until_complete([]() -> task<> {
        auto failing = corio::create_task([]() -> task<> {
            throw std::runtime_error("seen");
            co_return;
        });
        try {
            co_await failing;
        } catch (const std::runtime_error&) {
        }
        auto checked = corio::create_task([]() -> task<> {
            throw std::runtime_error("checked");
            co_return;
        });
        co_await checked.wait_done();
        CHECK(checked.exception() != nullptr);
        auto cancelled = corio::create_task([]() -> task<> { co_await corio::sleep(1h); });
        co_await corio::sleep(0s);
        cancelled.cancel();
        co_await cancelled.wait_done();
    });
    loop.close();
    CHECK(rec.reports.empty());
}

TEST_CASE("a future's unretrieved exception is reported as a Future's") {
    corio_test::report_recorder rec;
    corio::event_loop loop;
    rec.attach(loop);
    loop.run_until_complete([]() -> task<> {
        corio::future<int> f;
        f.set_exception(std::make_exception_ptr(std::runtime_error("unseen")));
        co_return;
    });
    CHECK(rec.count("Future exception was never retrieved") == 1);
}

TEST_CASE("corio::run leaves nothing pending and reports errors of cancelled leftovers") {
    corio_test::counted::reset();
    // A leftover that turns its cancellation into an error: reported, not thrown.
    CHECK_NOTHROW(corio::run([]() -> task<> {
        corio::get_running_loop().set_exception_handler(
            [](corio::event_loop&, const corio::exception_context& c) {
                CHECK(c.message == "unhandled exception during corio::run() shutdown");
            });
        corio::create_task([](corio_test::counted) -> task<> {
            try {
                co_await corio::sleep(1h);
            } catch (const corio::cancelled_error&) {
                throw std::runtime_error("cleanup failed");
            }
        }(corio_test::counted(1)));
        co_await corio::sleep(0s);
    }));
    CHECK(corio_test::counted::alive() == 0);
}
