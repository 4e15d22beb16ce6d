// The test clock (corio/testing.hpp): virtual time that jumps when every task is idle.
#include <corio/testing.hpp>

#include <corio/sleep.hpp>
#include <corio/task.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using corio::task;

TEST_CASE("hours of sleeping take no real time and the clock reads exactly") {
    const auto wall0 = std::chrono::steady_clock::now();
    double elapsed = corio::testing::run([]() -> task<double> {
        auto& loop = corio::get_running_loop();
        CHECK(loop.uses_virtual_time());
        double t0 = loop.time();
        co_await corio::sleep(3h);
        co_await corio::sleep(30min);
        co_return loop.time() - t0;
    });
    CHECK(elapsed == doctest::Approx(3.5 * 3600));
    CHECK(std::chrono::steady_clock::now() - wall0 < 10s); // far less in practice
}

TEST_CASE("concurrent sleepers wake in deadline order, deterministically") {
    for (int run = 0; run < 3; ++run) {
        std::vector<std::string> order;
        corio::testing::run([&]() -> task<> {
            auto sleeper = [&](std::string name, std::chrono::seconds d) -> task<> {
                co_await corio::sleep(d);
                order.push_back(name);
            };
            auto a = corio::create_task(sleeper("c", 3s));
            auto b = corio::create_task(sleeper("a", 1s));
            auto c = corio::create_task(sleeper("b", 2s));
            auto d = corio::create_task(sleeper("a2", 1s));
            co_await a;
            co_await b;
            co_await c;
            co_await d;
        });
        CHECK(order == std::vector<std::string>{"a", "a2", "b", "c"});
    }
}

TEST_CASE("virtual time stands still while work is ready") {
    corio::testing::run([]() -> task<> {
        auto& loop = corio::get_running_loop();
        double t0 = loop.time();
        for (int i = 0; i < 1000; ++i) co_await corio::sleep(0s);
        CHECK(loop.time() == t0);
        co_await corio::sleep(1ms);
        CHECK(loop.time() - t0 == doctest::Approx(0.001));
    });
}

TEST_CASE("sleep(d, value) gives the value back") {
    std::string s = corio::testing::run([]() -> task<std::string> {
        co_return co_await corio::sleep(5s, std::string("done"));
    });
    CHECK(s == "done");
}

TEST_CASE("a huge sleep saturates instead of overflowing") {
    corio::testing::run([]() -> task<> {
        auto t = corio::create_task([]() -> task<> { co_await corio::sleep(std::chrono::hours::max()); });
        co_await corio::sleep(1s);
        CHECK_FALSE(t.done());
        t.cancel();
        co_await t.wait_done();
        CHECK(t.cancelled());
    });
}

TEST_CASE("a sleep is an awaitable value: create_task(sleep(d, v)) works") {
    int v = corio::testing::run([]() -> task<int> {
        auto t = corio::create_task(corio::sleep(2s, 21));
        co_return 2 * co_await t;
    });
    CHECK(v == 42);
}
