// future<T>: states, results, errors, done callbacks, many awaiters.
#include <corio/future.hpp>

#include <corio/runners.hpp>
#include <corio/sleep.hpp>
#include <corio/task.hpp>
#include <corio/testing.hpp>

#include "support/helpers.hpp"

#include <doctest/doctest.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using corio::task;

TEST_CASE("a future goes pending -> done, and result/exception follow its state") {
    corio::run([]() -> task<> {
        corio::future<int> f;
        CHECK_FALSE(f.done());
        CHECK_FALSE(f.cancelled());
        CHECK_THROWS_AS(f.result(), corio::invalid_state_error);
        CHECK_THROWS_AS(f.exception(), corio::invalid_state_error);
        f.set_result(5);
        CHECK(f.done());
        CHECK(f.result() == 5);
        CHECK(f.exception() == nullptr);
        CHECK_THROWS_AS(f.set_result(6), corio::invalid_state_error);
        CHECK_THROWS_AS(f.set_exception(std::make_exception_ptr(std::runtime_error("x"))),
                        corio::invalid_state_error);
        CHECK_FALSE(f.cancel());
        CHECK(f.result() == 5);
        co_return;
    });
}

TEST_CASE("a failed future rethrows from result() and gives exception()") {
    corio::run([]() -> task<> {
        auto f = corio::get_running_loop().create_future<int>();
        f.set_exception(std::make_exception_ptr(std::out_of_range("nope")));
        CHECK(f.done());
        CHECK_THROWS_AS(f.result(), std::out_of_range);
        CHECK(f.exception() != nullptr);
        CHECK_THROWS_AS(co_await f, std::out_of_range);
    });
}

TEST_CASE("a cancelled future throws cancelled_error with the message") {
    corio::run([]() -> task<> {
        corio::future<> f;
        CHECK(f.cancel("stop it"));
        CHECK(f.cancelled());
        CHECK(f.done());
        CHECK_FALSE(f.cancel());
        CHECK_THROWS_AS(f.result(), corio::cancelled_error);
        CHECK_THROWS_AS(f.exception(), corio::cancelled_error);
        try {
            co_await f;
            FAIL("not thrown");
        } catch (const corio::cancelled_error& e) {
            CHECK(e.message() == "stop it");
        }
    });
}

TEST_CASE("done callbacks are scheduled with call_soon, in order, never inside set_result") {
    std::vector<std::string> order;
    corio::run([&]() -> task<> {
        corio::future<int> f;
        f.add_done_callback([&](const corio::future<int>& g) { order.push_back("a" + std::to_string(g.result())); });
        f.add_done_callback([&](const corio::future<int>& g) { order.push_back("b" + std::to_string(g.result())); });
        f.set_result(1);
        order.push_back("after set_result");
        co_await corio::sleep(0s);
        order.push_back("next iteration");
        // Added to a done future: scheduled at once, still not called inline.
        f.add_done_callback([&](const corio::future<int>&) { order.push_back("late"); });
        order.push_back("after add");
        co_await corio::sleep(0s);
    });
    CHECK(order == std::vector<std::string>{"after set_result", "a1", "b1", "next iteration",
                                            "after add", "late"});
}

TEST_CASE("many coroutines await one future and all get the value") {
    corio::run([]() -> task<> {
        corio::future<std::string> f;
        std::vector<std::string> got;
        auto waiter = [&](corio::future<std::string> fut) -> task<> { got.push_back(co_await fut); };
        auto a = corio::create_task(waiter(f));
        auto b = corio::create_task(waiter(f));
        auto c = corio::create_task(waiter(f));
        co_await corio::sleep(0s);
        CHECK(got.empty());
        f.set_result("hello");
        co_await a;
        co_await b;
        co_await c;
        CHECK(got == std::vector<std::string>{"hello", "hello", "hello"});
    });
}

TEST_CASE("a future set from a callback wakes its awaiter") {
    double waited = corio::testing::run([]() -> task<double> {
        auto& loop = corio::get_running_loop();
        corio::future<int> f;
        loop.call_later(2s, [f]() mutable { f.set_result(1); });
        double t0 = loop.time();
        CHECK(co_await f == 1);
        co_return loop.time() - t0;
    });
    CHECK(waited == doctest::Approx(2.0));
}

TEST_CASE("a task cannot await itself") {
    corio::run([]() -> task<> {
        corio::task_ref me = corio::current_task();
        corio::future<> as_future;
        (void)as_future;
        CHECK_THROWS_WITH_AS(co_await me.wait_done(), "Task cannot await on itself", std::runtime_error);
    });
}

TEST_CASE("a future outlives its loop as a detached, unusable handle") {
    corio::future<int> kept = corio::run([]() -> task<corio::future<int>> {
        corio::future<int> f;
        co_return f;
    });
    CHECK_FALSE(kept.done());
    CHECK_THROWS_WITH_AS(kept.set_result(1), "Event loop is closed", std::runtime_error);
    CHECK_THROWS_AS(kept.add_done_callback([](const corio::future<int>&) {}), std::runtime_error);
    CHECK_THROWS_AS(kept.cancel(), std::runtime_error);
    CHECK_THROWS_AS(kept.get_loop(), std::runtime_error);
}

TEST_CASE("an abandoned pending future with a done callback frees both") {
    corio_test::counted::reset();
    corio::run([]() -> task<> {
        corio::future<> f;
        f.add_done_callback([c = corio_test::counted(1)](const corio::future<>&) {});
        CHECK(corio_test::counted::alive() == 1);
        co_return;
    });
    CHECK(corio_test::counted::alive() == 0);
}

TEST_CASE("awaiting an empty future handle is an error, not a crash") {
    corio::run([]() -> task<> {
        corio::future<int> f;
        corio::future<int> g = std::move(f);
        CHECK_FALSE(f);
        CHECK_THROWS_AS(co_await std::move(f), corio::invalid_state_error);
        g.set_result(1);
        CHECK(co_await g == 1);
    });
}

TEST_CASE("a future of a vector of move-only values can be awaited") {
    auto v = corio::run([]() -> task<std::vector<std::unique_ptr<int>>> {
        corio::future<std::vector<std::unique_ptr<int>>> f;
        std::vector<std::unique_ptr<int>> items;
        items.push_back(std::make_unique<int>(3));
        f.set_result(std::move(items));
        co_return co_await std::move(f);
    });
    REQUIRE(v.size() == 1);
    CHECK(*v[0] == 3);
}
