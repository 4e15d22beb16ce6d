// task<T>: laziness, inline await, results and errors, run(), create_task, current_task,
// deep chains without stack growth, lifetimes of captures.
#include <corio/task.hpp>

#include <corio/runners.hpp>
#include <corio/sleep.hpp>

#include "support/helpers.hpp"

#include <doctest/doctest.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using corio::task;

namespace {

task<int> answer() { co_return 42; }
task<> nothing() { co_return; }
task<int> fails() {
    throw std::runtime_error("boom");
    co_return 0;
}
task<int> add_one(int x) { co_return x + 1; }

} // namespace

TEST_CASE("a task does not start until it is awaited") {
    bool started = false;
    auto make = [&]() -> task<> {
        started = true;
        co_return;
    };
    corio::run([&]() -> task<> {
        auto t = make();
        CHECK_FALSE(started);
        co_await corio::sleep(0s);
        CHECK_FALSE(started);
        co_await std::move(t);
        CHECK(started);
    });
}

TEST_CASE("a task that is never awaited never runs, and its frame is freed") {
    corio_test::counted::reset();
    bool ran = false;
    {
        auto make = [&ran](corio_test::counted) -> task<> {
            ran = true;
            co_return;
        };
        auto t = make(corio_test::counted(7));
        CHECK(corio_test::counted::alive() == 1); // the parameter, in the frame
    }
    CHECK_FALSE(ran);
    CHECK(corio_test::counted::alive() == 0);
}

TEST_CASE("co_await runs the task inline and gives its value") {
    std::vector<std::string> order;
    auto child = [&]() -> task<int> {
        order.push_back("child");
        co_return 7;
    };
    int v = corio::run([&]() -> task<int> {
        order.push_back("before");
        int x = co_await child();
        order.push_back("after");
        co_return x * 6;
    });
    CHECK(v == 42);
    CHECK(order == std::vector<std::string>{"before", "child", "after"});
}

TEST_CASE("an inline await does not go through the loop") {
    // A callback scheduled before the await must still be pending after it: the child ran
    // without the loop getting a turn.
    corio::run([]() -> task<> {
        bool callback_ran = false;
        corio::get_running_loop().call_soon([&] { callback_ran = true; });
        int x = co_await answer();
        CHECK(x == 42);
        CHECK_FALSE(callback_ran);
        co_await corio::sleep(0s);
        CHECK(callback_ran);
    });
}

TEST_CASE("run returns the value of main and rethrows its exception") {
    CHECK(corio::run(answer()) == 42);
    CHECK_NOTHROW(corio::run(nothing()));
    CHECK_THROWS_WITH_AS(corio::run(fails()), "boom", std::runtime_error);
}

TEST_CASE("exceptions propagate through inline awaits with their type") {
    corio::run([]() -> task<> {
        CHECK_THROWS_AS(co_await fails(), std::runtime_error);
        bool caught = false;
        try {
            co_await fails();
        } catch (const std::runtime_error& e) {
            caught = std::string(e.what()) == "boom";
        }
        CHECK(caught);
    });
}

TEST_CASE("run inside a running loop is a logic error") {
    corio::run([]() -> task<> {
        CHECK_THROWS_AS(corio::run(answer()), std::logic_error);
        co_return;
    });
}

TEST_CASE("get_running_loop outside a loop throws") {
    CHECK_THROWS_WITH_AS(corio::get_running_loop(), "no running event loop", std::runtime_error);
    CHECK_THROWS_AS(corio::create_task(answer()), std::runtime_error);
    CHECK_FALSE(corio::current_task());
}

TEST_CASE("a failed task awaited twice throws invalid_state_error the second time") {
    corio::run([]() -> task<> {
        auto t = fails();
        CHECK_THROWS_AS(co_await t, std::runtime_error);
        CHECK_THROWS_AS(co_await t, corio::invalid_state_error);
    });
}

TEST_CASE("a task can be awaited once; an empty task is an error") {
    corio::run([]() -> task<> {
        auto t = answer();
        CHECK(co_await t == 42);
        CHECK_THROWS_AS(co_await t, corio::invalid_state_error);
        task<int> moved = std::move(t);
        CHECK_THROWS_AS(co_await t, corio::invalid_state_error);
        task<int> empty;
        CHECK_FALSE(empty);
        CHECK_THROWS_AS(co_await empty, corio::invalid_state_error);
    });
}

TEST_CASE("create_task schedules in creation order and returns a handle") {
    std::vector<int> order;
    auto worker = [&order](int i) -> task<int> {
        order.push_back(i);
        co_await corio::sleep(0s);
        order.push_back(10 + i);
        co_return i * i;
    };
    corio::run([&]() -> task<> {
        auto a = corio::create_task(worker(1));
        auto b = corio::create_task(worker(2));
        auto c = corio::create_task(worker(3));
        CHECK(order.empty()); // scheduled, not started
        CHECK(co_await c == 9);
        CHECK(co_await a == 1);
        CHECK(co_await b == 4);
        CHECK(a.done());
        CHECK(a.result() == 1);
    });
    CHECK(order == std::vector<int>{1, 2, 3, 11, 12, 13});
}

TEST_CASE("task names: default Task-N, given name, set_name") {
    corio::run([]() -> task<> {
        auto a = corio::create_task(nothing());
        auto b = corio::create_task(nothing(), "worker");
        CHECK(a.get_name().rfind("Task-", 0) == 0);
        CHECK(b.get_name() == "worker");
        b.set_name("renamed");
        CHECK(b.get_name() == "renamed");
        co_await a;
        co_await b;
    });
}

TEST_CASE("current_task and all_tasks") {
    corio::run([]() -> task<> {
        corio::task_ref me = corio::current_task();
        REQUIRE(me);
        CHECK_FALSE(me.done());
        corio::task_ref seen;
        auto child = corio::create_task([&]() -> task<> {
            seen = corio::current_task();
            co_await corio::sleep(1ms);
        });
        auto tasks = corio::all_tasks();
        CHECK(tasks.size() == 2);
        CHECK(tasks[0] == me);
        CHECK(tasks[1] == corio::task_ref(child));
        co_await child;
        CHECK(seen == corio::task_ref(child));
        CHECK(corio::all_tasks().size() == 1);
    });
}

TEST_CASE("a task handle is a future") {
    corio::run([]() -> task<> {
        corio::future<int> f = corio::create_task(add_one(1));
        CHECK(co_await f == 2);
        auto g = corio::ensure_future(add_one(2));
        CHECK(co_await g == 3);
        corio::future<int> h = corio::ensure_future(f); // a future stays itself
        CHECK(h == f);
    });
}

TEST_CASE("lambda captures stay alive when the callable is handed to corio (CP.51)") {
    corio_test::counted::reset();
    int result = corio::run([]() -> task<int> {
        auto t = corio::create_task([c = corio_test::counted(5)]() -> task<int> {
            co_await corio::sleep(1ms); // the temporary lambda is long gone by now
            co_return c.value;
        });
        auto u = corio::co_invoke([](corio_test::counted c, int k) -> task<int> {
            co_await corio::sleep(1ms);
            co_return c.value * k;
        }, corio_test::counted(3), 2);
        co_return co_await t + co_await u;
    });
    CHECK(result == 11);
    CHECK(corio_test::counted::alive() == 0);
}

TEST_CASE("a million synchronously completing awaits do not grow the stack") {
    // GCC PR 94794: no tail call for symmetric transfer at -O0 or under ASan. The trampoline
    // keeps the depth constant; without it this overflows the stack in the sanitizer CI job.
    long sum = corio::run([]() -> task<long> {
        long s = 0;
        for (int i = 0; i < 1'000'000; ++i) s += co_await add_one(i);
        co_return s;
    });
    CHECK(sum == 1'000'000L * 1'000'001L / 2);
}

namespace {
task<int> depth(int n) {
    if (n == 0) co_return 0;
    co_return 1 + co_await depth(n - 1);
}
} // namespace

TEST_CASE("a chain of 100,000 nested awaits completes") {
    CHECK(corio::run(depth(100'000)) == 100'000);
}

TEST_CASE("return types: move-only values and references to outer state") {
    auto r = corio::run([]() -> task<std::unique_ptr<int>> {
        auto t = corio::create_task([]() -> task<std::unique_ptr<int>> {
            co_return std::make_unique<int>(9);
        });
        co_return co_await std::move(t);
    });
    REQUIRE(r);
    CHECK(*r == 9);
}
