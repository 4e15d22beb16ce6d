// async_generator<T>: laziness, values and their copies/moves, awaits inside, errors, the end,
// early destruction, cancellation at each await, misuse, and a flat stack for long and deep
// generators (the task's trampoline).
#include <corio/async_generator.hpp>

#include <corio/future.hpp>
#include <corio/runners.hpp>
#include <corio/sleep.hpp>
#include <corio/task.hpp>
#include <corio/testing.hpp>

#include "support/helpers.hpp"

#include <doctest/doctest.h>

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

using namespace std::chrono_literals;
using corio::async_generator;
using corio::task;
using corio_test::counted;

namespace {

async_generator<int> count_to(int n) {
    for (int i = 1; i <= n; ++i) co_yield i;
}

async_generator<int> count_slowly(int n) {
    for (int i = 1; i <= n; ++i) {
        co_await corio::sleep(1s);
        co_yield i;
    }
}

task<int> twice(int x) { co_return 2 * x; }

/// Reads everything a generator gives.
template <class T>
task<std::vector<T>> drain(async_generator<T>& g) {
    std::vector<T> out;
    while (auto v = co_await g.next()) out.push_back(std::move(*v));
    co_return out;
}

} // namespace

static_assert(!std::is_copy_constructible_v<async_generator<int>>);
static_assert(!std::is_copy_assignable_v<async_generator<int>>);
static_assert(std::is_nothrow_move_constructible_v<async_generator<int>>);
static_assert(std::is_nothrow_move_assignable_v<async_generator<int>>);

TEST_CASE("values in order, then nullopt for good") {
    corio::run([]() -> task<> {
        auto g = count_to(3);
        std::vector<int> got;
        while (auto v = co_await g.next()) got.push_back(*v);
        CHECK(got == std::vector<int>{1, 2, 3});
        CHECK(g.done());
        auto again = co_await g.next();
        CHECK_FALSE(again.has_value());
    });
}

TEST_CASE("lazy: the body starts at the first next()") {
    corio::run([]() -> task<> {
        std::vector<std::string> log;
        auto make = [&]() -> async_generator<int> {
            log.push_back("start");
            co_yield 1;
            log.push_back("after 1");
        };
        auto g = make();
        co_await corio::sleep(0s);
        CHECK(log.empty());
        CHECK_FALSE(g.done());
        auto v = co_await g.next();
        CHECK(*v == 1);
        CHECK(log == std::vector<std::string>{"start"});
        v = co_await g.next();
        CHECK_FALSE(v);
        CHECK(log == std::vector<std::string>{"start", "after 1"});
    });
}

TEST_CASE("a generator that is never read never runs, and its frame is freed") {
    counted::reset();
    bool ran = false;
    {
        auto make = [&ran](counted) -> async_generator<int> {
            ran = true;
            co_yield 1;
        };
        auto g = make(counted(1));
        CHECK(counted::alive() == 1);
    }
    CHECK_FALSE(ran);
    CHECK(counted::alive() == 0);
}

TEST_CASE("an empty body ends at once") {
    corio::run([]() -> task<> {
        auto g = count_to(0);
        auto v = co_await g.next();
        CHECK_FALSE(v);
    });
}

TEST_CASE("co_yield of an rvalue moves it once; of an lvalue copies it; conversions work") {
    counted::reset();
    corio::run([]() -> task<> {
        {
            auto make = []() -> async_generator<counted> {
                counted local(1);
                co_yield local;           // copied: `local` stays usable
                CHECK(local.value == 1);
                CHECK_FALSE(local.moved_from);
                co_yield std::move(local); // moved into next()'s optional
                CHECK(local.moved_from);
                co_yield counted(3);       // a temporary: moved
            };
            auto g = make();
            auto a = co_await g.next();
            auto b = co_await g.next();
            auto c = co_await g.next();
            REQUIRE(a);
            REQUIRE(b);
            REQUIRE(c);
            CHECK(a->value == 1);
            CHECK(b->value == 1);
            CHECK(c->value == 3);
            auto end = co_await g.next();
            CHECK_FALSE(end);
        }
        CHECK(counted::alive() == 0);

        auto words = []() -> async_generator<std::string> {
            co_yield "converted";          // const char* -> std::string
            std::string s = "named";
            co_yield s;
        };
        auto g = words();
        auto got = co_await drain(g);
        CHECK(got == std::vector<std::string>{"converted", "named"});
    });
    CHECK(counted::alive() == 0);
}

TEST_CASE("move-only values") {
    corio::run([]() -> task<> {
        auto make = []() -> async_generator<std::unique_ptr<int>> {
            co_yield std::make_unique<int>(1);
            auto p = std::make_unique<int>(2);
            co_yield std::move(p);
        };
        auto g = make();
        auto a = co_await g.next();
        auto b = co_await g.next();
        REQUIRE(a);
        REQUIRE(b);
        CHECK(**a == 1);
        CHECK(**b == 2);
    });
}

TEST_CASE("the body may await sleeps, futures, tasks and other generators") {
    corio::testing::run([]() -> task<> {
        auto& loop = corio::get_running_loop();
        const double t0 = loop.time();
        corio::future<int> f;
        loop.call_later(5s, [f]() mutable { f.set_result(100); });
        auto make = [&]() -> async_generator<int> {
            co_await corio::sleep(1s);
            co_yield 1;
            co_yield co_await f;           // waits until t0 + 5s
            co_yield co_await twice(21);   // an inline task
            auto inner = count_slowly(2);  // a generator inside a generator
            while (auto v = co_await inner.next()) co_yield 1000 + *v;
        };
        auto g = make();
        std::vector<std::pair<int, double>> got;
        while (auto v = co_await g.next()) got.emplace_back(*v, loop.time() - t0);
        REQUIRE(got.size() == 5);
        CHECK(got[0].first == 1);
        CHECK(got[0].second == doctest::Approx(1.0));
        CHECK(got[1].first == 100);
        CHECK(got[1].second == doctest::Approx(5.0));
        CHECK(got[2].first == 42);
        CHECK(got[3].first == 1001);
        CHECK(got[3].second == doctest::Approx(6.0));
        CHECK(got[4].first == 1002);
        CHECK(got[4].second == doctest::Approx(7.0));
    });
}

TEST_CASE("the generator runs in the consumer's task") {
    corio::run([]() -> task<> {
        corio::task_ref consumer = corio::current_task();
        auto make = [&]() -> async_generator<bool> {
            co_yield corio::current_task() == consumer;
            co_await corio::sleep(0s);
            co_yield corio::current_task() == consumer;
        };
        auto g = make();
        auto got = co_await drain(g);
        CHECK(got == std::vector<bool>{true, true});
    });
}

TEST_CASE("an exception in the body comes out of next() once, then nullopt") {
    corio::run([]() -> task<> {
        auto make = []() -> async_generator<int> {
            co_yield 1;
            co_await corio::sleep(0s);
            throw std::runtime_error("generator failed");
        };
        auto g = make();
        auto a = co_await g.next();
        CHECK(*a == 1);
        bool thrown = false;
        try {
            co_await g.next();
        } catch (const std::runtime_error& e) {
            thrown = std::string(e.what()) == "generator failed";
        }
        CHECK(thrown);
        CHECK(g.done());
        auto after = co_await g.next();
        CHECK_FALSE(after);
    });
}

TEST_CASE("an exception before the first yield") {
    corio::run([]() -> task<> {
        auto make = []() -> async_generator<int> {
            throw std::logic_error("at once");
            co_return;
        };
        auto g = make();
        bool thrown = false;
        try {
            co_await g.next();
        } catch (const std::logic_error&) {
            thrown = true;
        }
        CHECK(thrown);
    });
}

TEST_CASE("stopping early destroys the frame at its yield; locals are destroyed once") {
    counted::reset();
    corio::run([]() -> task<> {
        bool cleaned = false;
        {
            auto make = [&]() -> async_generator<int> {
                counted local(1);
                struct on_exit {
                    bool& flag;
                    ~on_exit() { flag = true; }
                } guard{cleaned};
                for (int i = 0;; ++i) {
                    co_await corio::sleep(0s);
                    co_yield i;
                }
            };
            auto g = make();
            co_await g.next();
            auto b = co_await g.next();
            CHECK(*b == 1);
            CHECK(counted::alive() == 1);
            CHECK_FALSE(cleaned);
        }
        CHECK(cleaned);
        CHECK(counted::alive() == 0);
    });
    CHECK(counted::alive() == 0);
}

TEST_CASE("a consumer destroyed while the generator sleeps inside: the timer is unregistered") {
    counted::reset();
    corio_test::report_recorder rec;
    {
        corio::event_loop loop;
        rec.attach(loop);
        bool reached_end = false;
        auto consumer = [&reached_end]() -> task<> {
            auto make = []() -> async_generator<int> {
                counted local(1);
                co_await corio::sleep(1h); // destroyed here
                co_yield 1;
            };
            auto g = make();
            co_await g.next();
            reached_end = true;
        };
        auto t = loop.create_task(consumer, "consumer");
        loop.run_until_complete([]() -> task<> { co_await corio::sleep(1ms); });
        CHECK(counted::alive() == 1);
        loop.close(); // destroys the consumer's frame, the generator's with it
        CHECK(counted::alive() == 0);
        CHECK_FALSE(reached_end);
        CHECK(t.cancelled());
    }
    CHECK(rec.count("Task was destroyed but it is pending!") == 1);
}

TEST_CASE("cancelled at a sleep inside the generator: thrown there, out of next()") {
    counted::reset();
    corio::testing::run([]() -> task<> {
        std::vector<std::string> log;
        auto consumer = [&]() -> task<> {
            auto make = [&]() -> async_generator<int> {
                counted local(1);
                co_yield 1;
                try {
                    co_await corio::sleep(1h);
                } catch (const corio::cancelled_error& e) {
                    log.push_back(std::string("generator saw: ") + e.what());
                    throw;
                }
                co_yield 2;
            };
            auto g = make();
            auto a = co_await g.next();
            log.push_back("got " + std::to_string(*a));
            try {
                co_await g.next();
            } catch (const corio::cancelled_error&) {
                log.push_back("next() threw");
                throw;
            }
        };
        auto t = corio::create_task(consumer);
        co_await corio::sleep(1s);
        CHECK(counted::alive() == 1);
        t.cancel("stop");
        co_await t.wait_done();
        CHECK(t.cancelled());
        CHECK(log == std::vector<std::string>{"got 1", "generator saw: stop", "next() threw"});
        CHECK(counted::alive() == 0);
    });
}

TEST_CASE("cancelled at a future awaited inside the generator: the future is cancelled too") {
    corio::run([]() -> task<> {
        corio::future<int> f;
        auto consumer = [f]() -> task<> {
            auto make = [](corio::future<int> fut) -> async_generator<int> { co_yield co_await fut; };
            auto g = make(f);
            co_await g.next();
        };
        auto t = corio::create_task(consumer);
        co_await corio::sleep(0s);
        t.cancel();
        co_await t.wait_done();
        CHECK(t.cancelled());
        CHECK(f.cancelled());
    });
}

TEST_CASE("cancelled at a task awaited inside the generator: that task is cancelled too") {
    corio::testing::run([]() -> task<> {
        auto child = corio::create_task([]() -> task<int> {
            co_await corio::sleep(1h);
            co_return 1;
        });
        auto consumer = [child]() -> task<> {
            auto make = [](corio::task_handle<int> c) -> async_generator<int> { co_yield co_await c; };
            auto g = make(child);
            co_await g.next();
        };
        auto t = corio::create_task(consumer);
        co_await corio::sleep(1s);
        t.cancel();
        co_await t.wait_done();
        CHECK(t.cancelled());
        CHECK(child.cancelled());
    });
}

TEST_CASE("cancelled at a nested generator's await: unwinds both generators") {
    corio::testing::run([]() -> task<> {
        std::vector<std::string> log;
        auto consumer = [&]() -> task<> {
            auto inner_fn = [&]() -> async_generator<int> {
                try {
                    co_await corio::sleep(1h);
                } catch (const corio::cancelled_error&) {
                    log.push_back("inner");
                    throw;
                }
                co_yield 1;
            };
            auto outer_fn = [&]() -> async_generator<int> {
                auto inner = inner_fn();
                try {
                    while (auto v = co_await inner.next()) co_yield *v;
                } catch (const corio::cancelled_error&) {
                    log.push_back("outer");
                    throw;
                }
            };
            auto g = outer_fn();
            co_await g.next();
        };
        auto t = corio::create_task(consumer);
        co_await corio::sleep(1s);
        t.cancel();
        co_await t.wait_done();
        CHECK(t.cancelled());
        CHECK(log == std::vector<std::string>{"inner", "outer"});
    });
}

TEST_CASE("cancelled while the consumer awaits elsewhere: the generator is destroyed at its yield") {
    counted::reset();
    corio::testing::run([]() -> task<> {
        bool generator_saw_cancel = false;
        auto consumer = [&]() -> task<> {
            auto make = [&]() -> async_generator<int> {
                counted local(1);
                try {
                    co_yield 1;
                    co_yield 2;
                } catch (...) { // never: a destroyed frame does not see an exception
                    generator_saw_cancel = true;
                }
            };
            auto g = make();
            co_await g.next();
            co_await corio::sleep(1h); // cancelled here
            co_await g.next();
        };
        auto t = corio::create_task(consumer);
        co_await corio::sleep(1s);
        CHECK(counted::alive() == 1);
        t.cancel();
        co_await t.wait_done();
        CHECK(t.cancelled());
        CHECK_FALSE(generator_saw_cancel);
        CHECK(counted::alive() == 0);
    });
}

TEST_CASE("a generator may catch the cancellation and go on yielding") {
    corio::testing::run([]() -> task<> {
        auto consumer = []() -> task<std::vector<int>> {
            auto make = []() -> async_generator<int> {
                bool cancelled = false;
                try {
                    co_await corio::sleep(1h);
                } catch (const corio::cancelled_error&) {
                    cancelled = true;
                }
                co_yield cancelled ? -1 : 1;
                co_await corio::sleep(1s); // awaiting after the cancellation works
                co_yield -2;
            };
            auto g = make();
            co_return co_await drain(g);
        };
        auto t = corio::create_task(consumer);
        co_await corio::sleep(1s);
        t.cancel();
        co_await t.wait_done();
        CHECK_FALSE(t.cancelled());
        CHECK(t.result() == std::vector<int>{-1, -2});
        CHECK(t.cancelling() == 1);
    });
}

TEST_CASE("a cancellation requested while running arrives at the generator's next suspension") {
    corio::testing::run([]() -> task<> {
        std::vector<std::string> log;
        auto consumer = [&]() -> task<> {
            auto make = [&]() -> async_generator<int> {
                co_yield 1; // no suspension: the request is not delivered here
                try {
                    co_await corio::sleep(1s);
                } catch (const corio::cancelled_error&) {
                    log.push_back("at the sleep");
                    throw;
                }
            };
            auto g = make();
            corio::current_task().cancel();
            auto v = co_await g.next();
            log.push_back("got " + std::to_string(*v));
            co_await g.next();
        };
        auto t = corio::create_task(consumer);
        co_await t.wait_done();
        CHECK(t.cancelled());
        CHECK(log == std::vector<std::string>{"got 1", "at the sleep"});
    });
}

TEST_CASE("next() while a previous next() is pending throws invalid_state_error") {
    corio::testing::run([]() -> task<> {
        auto g = count_slowly(2);
        auto first = corio::create_task([&g]() -> task<int> {
            auto v = co_await g.next();
            co_return *v;
        });
        co_await corio::sleep(0s); // `first` is inside the generator's sleep now
        bool thrown = false;
        try {
            co_await g.next();
        } catch (const corio::invalid_state_error&) {
            thrown = true;
        }
        CHECK(thrown);
        const int v = co_await first;
        CHECK(v == 1);
        auto second = co_await g.next(); // fine again once the first one is over
        CHECK(*second == 2);
    });
}

TEST_CASE("next() inside the generator itself is the same misuse") {
    corio::run([]() -> task<> {
        async_generator<int>* self = nullptr;
        auto make = [&]() -> async_generator<int> {
            co_await self->next();
            co_yield 1;
        };
        auto g = make();
        self = &g;
        bool thrown = false;
        try {
            co_await g.next();
        } catch (const corio::invalid_state_error&) {
            thrown = true;
        }
        CHECK(thrown);
    });
}

TEST_CASE("moving: the moved-from generator is empty, next() on it throws") {
    corio::run([]() -> task<> {
        auto a = count_to(3);
        auto v = co_await a.next();
        CHECK(*v == 1);
        async_generator<int> b = std::move(a);
        CHECK_FALSE(a);
        CHECK(b);
        CHECK(a.done());
        bool thrown = false;
        try {
            co_await a.next();
        } catch (const corio::invalid_state_error&) {
            thrown = true;
        }
        CHECK(thrown);
        v = co_await b.next();
        CHECK(*v == 2);
        async_generator<int> c;
        c = std::move(b);
        v = co_await c.next();
        CHECK(*v == 3);
        c = count_to(1); // move-assigning over a live generator destroys its frame
        v = co_await c.next();
        CHECK(*v == 1);
    });
}

TEST_CASE("a million values without suspending do not grow the stack") {
    corio::run([]() -> task<> {
        auto g = count_to(1'000'000);
        long long sum = 0;
        while (auto v = co_await g.next()) sum += *v;
        CHECK(sum == 500'000'500'000LL);
    });
}

TEST_CASE("inline task awaits inside a long generator do not grow the stack") {
    corio::run([]() -> task<> {
        auto make = []() -> async_generator<int> {
            for (int i = 0; i < 200'000; ++i) co_yield co_await twice(i);
        };
        auto g = make();
        long long sum = 0;
        while (auto v = co_await g.next()) sum += *v;
        CHECK(sum == 2LL * (200'000LL * 199'999LL / 2));
    });
}

namespace {
async_generator<int> relay(int depth) {
    if (depth == 0) {
        for (int i = 0; i < 100; ++i) co_yield i;
        co_return;
    }
    auto inner = relay(depth - 1);
    while (auto v = co_await inner.next()) co_yield *v;
}
} // namespace

TEST_CASE("a chain of 1,000 generators reading one another") {
    corio::run([]() -> task<> {
        auto g = relay(1000);
        int n = 0;
        int last = -1;
        while (auto v = co_await g.next()) {
            ++n;
            last = *v;
        }
        CHECK(n == 100);
        CHECK(last == 99);
    });
}

TEST_CASE("a generator consumed by a spawned task and values with destructors do not leak") {
    counted::reset();
    corio::testing::run([]() -> task<> {
        auto make = []() -> async_generator<counted> {
            for (int i = 0; i < 5; ++i) {
                co_await corio::sleep(1s);
                co_yield counted(i);
            }
        };
        auto t = corio::create_task([make]() -> task<int> {
            auto g = make();
            int sum = 0;
            while (auto v = co_await g.next()) sum += v->value;
            co_return sum;
        });
        const int sum = co_await t;
        CHECK(sum == 10);
    });
    CHECK(counted::alive() == 0);
}
