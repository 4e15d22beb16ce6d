// task_group: asyncio's TaskGroup with join(). Results, the first failure cancelling the rest,
// exception_group, the joiner's cancellation, adding tasks late, destruction without join(),
// and what is (not) reported.
#include <corio/task_group.hpp>

#include <corio/future.hpp>
#include <corio/runners.hpp>
#include <corio/sleep.hpp>
#include <corio/task.hpp>
#include <corio/testing.hpp>

#include "support/helpers.hpp"

#include <doctest/doctest.h>

#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using corio::task;
using corio_test::counted;

namespace {

task<int> value_after(std::chrono::seconds d, int v) {
    co_await corio::sleep(d);
    co_return v;
}

task<int> fail_after(std::chrono::seconds d, const char* what) {
    co_await corio::sleep(d);
    throw std::runtime_error(what);
}

/// The messages of an exception_group's errors, in order.
std::vector<std::string> messages(const corio::exception_group& g) {
    std::vector<std::string> out;
    for (const auto& e : g.exceptions()) {
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& x) {
            out.emplace_back(x.what());
        }
    }
    return out;
}

} // namespace

TEST_CASE("join waits for every child; the handles have the results") {
    corio::testing::run([]() -> task<> {
        auto& loop = corio::get_running_loop();
        const double t0 = loop.time();
        corio::task_group tg;
        auto a = tg.create_task(value_after(2s, 1));
        auto b = tg.create_task(value_after(1s, 2));
        auto c = tg.create_task([]() -> task<> { co_await corio::sleep(3s); });
        co_await tg.join();
        CHECK(loop.time() - t0 == doctest::Approx(3.0));
        CHECK(a.result() == 1);
        CHECK(b.result() == 2);
        CHECK(c.done());
    });
}

TEST_CASE("join with no children returns at once") {
    corio::run([]() -> task<> {
        corio::task_group tg;
        co_await tg.join();
    });
}

TEST_CASE("create_task takes tasks, callables, awaitables and a name") {
    corio::run([]() -> task<> {
        corio::task_group tg;
        corio::future<int> f;
        f.set_result(5);
        std::string captured = "kept alive";
        auto a = tg.create_task([captured]() -> task<std::string> {
            co_await corio::sleep(0s);
            co_return captured;
        });
        auto b = tg.create_task(f, "from a future");
        auto c = tg.create_task(value_after(0s, 7));
        CHECK(b.get_name() == "from a future");
        co_await tg.join();
        CHECK(a.result() == "kept alive");
        CHECK(b.result() == 5);
        CHECK(c.result() == 7);
    });
}

TEST_CASE("the first failure cancels the others; join throws exception_group") {
    corio_test::report_recorder rec;
    corio::testing::run([&rec]() -> task<> {
        rec.attach(corio::get_running_loop());
        auto& loop = corio::get_running_loop();
        const double t0 = loop.time();
        corio::task_group tg;
        auto slow = tg.create_task(value_after(1h, 1));
        auto done_before = tg.create_task(value_after(1s, 2));
        auto failing = tg.create_task(fail_after(2s, "boom"));
        bool caught = false;
        try {
            co_await tg.join();
        } catch (const corio::exception_group& g) {
            caught = true;
            CHECK(std::string(g.what()) == "unhandled errors in a TaskGroup (1 sub-exception)");
            CHECK(messages(g) == std::vector<std::string>{"boom"});
        }
        CHECK(caught);
        CHECK(loop.time() - t0 == doctest::Approx(2.0)); // did not wait for the hour
        CHECK(slow.cancelled());
        CHECK(done_before.result() == 2);
        CHECK_FALSE(failing.cancelled());
    });
    CHECK(rec.count("Task exception was never retrieved") == 0); // join delivered it
}

TEST_CASE("every error is kept, in the order the children failed") {
    corio_test::report_recorder rec;
    corio::testing::run([&rec]() -> task<> {
        rec.attach(corio::get_running_loop());
        corio::task_group tg;
        tg.create_task([]() -> task<> { // fails while being cancelled
            bool cancelled = false;
            try {
                co_await corio::sleep(1h);
            } catch (const corio::cancelled_error&) {
                cancelled = true;
            }
            if (cancelled) {
                co_await corio::sleep(1s);
                throw std::logic_error("cleanup failed");
            }
        });
        tg.create_task(fail_after(2s, "first"));
        tg.create_task([]() -> task<> { // ends cancelled, by itself: not an error
            co_await corio::sleep(1s);
            throw corio::cancelled_error("mine");
        });
        std::vector<std::string> got;
        std::string what;
        try {
            co_await tg.join();
        } catch (const corio::exception_group& g) {
            got = messages(g);
            what = g.what();
        }
        CHECK(got == std::vector<std::string>{"first", "cleanup failed"});
        CHECK(what == "unhandled errors in a TaskGroup (2 sub-exceptions)");
    });
    CHECK(rec.reports.empty());
}

TEST_CASE("a failure while the parent is busy elsewhere: siblings cancelled at once") {
    corio::testing::run([]() -> task<> {
        corio::task_group tg;
        auto sibling = tg.create_task(value_after(1h, 1));
        tg.create_task(fail_after(1s, "early"));
        co_await corio::sleep(10s); // join() not awaited yet
        CHECK(sibling.cancelled());
        bool caught = false;
        try {
            co_await tg.join();
        } catch (const corio::exception_group& g) {
            caught = messages(g) == std::vector<std::string>{"early"};
        }
        CHECK(caught);
    });
}

TEST_CASE("adding a task after a failure or after join throws, and does not start it") {
    corio::testing::run([]() -> task<> {
        bool started = false;
        auto late = [&started]() -> task<> {
            started = true;
            co_return;
        };
        {
            corio::task_group tg;
            tg.create_task(fail_after(1s, "x"));
            co_await corio::sleep(2s);
            CHECK_THROWS_WITH_AS(tg.create_task(late), "TaskGroup is shutting down", std::runtime_error);
            bool thrown = false;
            try {
                co_await tg.join();
            } catch (const corio::exception_group&) {
                thrown = true;
            }
            CHECK(thrown);
            CHECK_THROWS_WITH_AS(tg.create_task(late), "TaskGroup is finished", std::runtime_error);
        }
        {
            corio::task_group tg;
            co_await tg.join();
            CHECK_THROWS_WITH_AS(tg.create_task(late), "TaskGroup is finished", std::runtime_error);
        }
        co_await corio::sleep(0s);
        CHECK_FALSE(started);
    });
}

TEST_CASE("children may add children while join waits") {
    corio::testing::run([]() -> task<> {
        corio::task_group tg;
        std::vector<int> order;
        tg.create_task([&]() -> task<> {
            co_await corio::sleep(1s);
            order.push_back(1);
            tg.create_task([&]() -> task<> {
                co_await corio::sleep(5s);
                order.push_back(2);
            });
        });
        co_await tg.join();
        order.push_back(3);
        CHECK(order == std::vector<int>{1, 2, 3});
    });
}

TEST_CASE("cancelling the joiner cancels the children, waits for them, rethrows cancelled_error") {
    corio::testing::run([]() -> task<> {
        auto& loop = corio::get_running_loop();
        std::vector<std::string> log;
        auto parent = corio::create_task([&]() -> task<> {
            corio::task_group tg;
            for (int i = 0; i < 3; ++i) {
                tg.create_task([&log, i]() -> task<> {
                    bool cancelled = false;
                    try {
                        co_await corio::sleep(1h);
                    } catch (const corio::cancelled_error&) {
                        cancelled = true;
                    }
                    if (cancelled) {
                        co_await corio::sleep(std::chrono::seconds(i + 1)); // slow cleanup
                        log.push_back("child " + std::to_string(i) + " cleaned up");
                        throw corio::cancelled_error();
                    }
                });
            }
            try {
                co_await tg.join();
            } catch (const corio::cancelled_error& e) {
                log.push_back(std::string("join threw: ") + e.what());
                throw;
            }
        });
        co_await corio::sleep(1s);
        const double t_cancel = loop.time();
        parent.cancel("stop");
        co_await parent.wait_done();
        CHECK(parent.cancelled());
        CHECK(loop.time() - t_cancel == doctest::Approx(3.0)); // the slowest cleanup
        CHECK(log == std::vector<std::string>{"child 0 cleaned up", "child 1 cleaned up",
                                              "child 2 cleaned up", "join threw: stop"});
    });
}

TEST_CASE("cancelling the joiner twice: join still waits for every child") {
    corio::testing::run([]() -> task<> {
        bool child_done = false;
        auto parent = corio::create_task([&]() -> task<> {
            corio::task_group tg;
            tg.create_task([&]() -> task<> {
                bool cancelled = false;
                try {
                    co_await corio::sleep(1h);
                } catch (const corio::cancelled_error&) {
                    cancelled = true;
                }
                if (cancelled) {
                    co_await corio::sleep(5s);
                    child_done = true;
                }
            });
            co_await tg.join();
        });
        co_await corio::sleep(1s);
        parent.cancel();
        co_await corio::sleep(1s);
        CHECK_FALSE(parent.done());
        parent.cancel();
        co_await parent.wait_done();
        CHECK(child_done);
        CHECK(parent.cancelled());
    });
}

TEST_CASE("joiner cancelled and a child failing meanwhile: the errors win (asyncio)") {
    corio_test::report_recorder rec;
    corio::testing::run([&rec]() -> task<> {
        rec.attach(corio::get_running_loop());
        std::vector<std::string> got;
        auto parent = corio::create_task([&]() -> task<> {
            corio::task_group tg;
            tg.create_task([]() -> task<> {
                try {
                    co_await corio::sleep(1h);
                } catch (const corio::cancelled_error&) {
                    throw std::runtime_error("failed in cleanup");
                }
            });
            try {
                co_await tg.join();
            } catch (const corio::exception_group& g) {
                got = messages(g);
            }
        });
        co_await corio::sleep(1s);
        parent.cancel();
        co_await parent.wait_done();
        CHECK_FALSE(parent.cancelled()); // it caught the group and returned
        CHECK(parent.cancelling() == 1); // but it was cancelled
        CHECK(got == std::vector<std::string>{"failed in cleanup"});
    });
    CHECK(rec.reports.empty());
}

TEST_CASE("a child that swallows its cancellation: join returns its value's handle done") {
    corio::testing::run([]() -> task<> {
        corio::task_group tg;
        auto stubborn = tg.create_task([]() -> task<int> {
            try {
                co_await corio::sleep(1h);
            } catch (const corio::cancelled_error&) {
            }
            co_return 9;
        });
        tg.create_task(fail_after(1s, "x"));
        bool thrown = false;
        try {
            co_await tg.join();
        } catch (const corio::exception_group&) {
            thrown = true;
        }
        CHECK(thrown);
        CHECK(stubborn.result() == 9);
    });
}

TEST_CASE("join awaited twice: concurrently is an error, after it finished returns at once") {
    corio::testing::run([]() -> task<> {
        corio::task_group tg;
        tg.create_task(value_after(1s, 1));
        auto first = corio::create_task([&tg]() -> task<> { co_await tg.join(); });
        co_await corio::sleep(0s);
        bool thrown = false;
        try {
            co_await tg.join();
        } catch (const corio::invalid_state_error&) {
            thrown = true;
        }
        CHECK(thrown);
        co_await first;
        co_await tg.join(); // finished: nothing to wait for
    });
}

TEST_CASE("the errors are thrown once: a second join after a failure returns") {
    corio::testing::run([]() -> task<> {
        corio::task_group tg;
        tg.create_task(fail_after(1s, "once"));
        int thrown = 0;
        try {
            co_await tg.join();
        } catch (const corio::exception_group&) {
            ++thrown;
        }
        co_await tg.join();
        CHECK(thrown == 1);
    });
}

TEST_CASE("destroyed without join: running children are cancelled and finish by themselves") {
    counted::reset();
    corio::testing::run([]() -> task<> {
        std::vector<std::string> log;
        corio::task_handle<int> child;
        {
            corio::task_group tg;
            // No captures: the lambda object dies before the coroutine runs (CP.51).
            child = tg.create_task([](std::vector<std::string>* out, counted) -> task<int> {
                try {
                    co_await corio::sleep(1h);
                } catch (const corio::cancelled_error&) {
                    out->push_back("child cancelled");
                    throw;
                }
                co_return 1;
            }(&log, counted(1)));
            co_await corio::sleep(1s);
        } // no join
        CHECK_FALSE(child.done()); // the cancellation is delivered on the loop
        co_await child.wait_done();
        CHECK(child.cancelled());
        CHECK(log == std::vector<std::string>{"child cancelled"});
    });
    CHECK(counted::alive() == 0);
}

TEST_CASE("destroyed without join: the errors nobody saw are reported as never retrieved") {
    corio_test::report_recorder rec;
    corio::testing::run([&rec]() -> task<> {
        rec.attach(corio::get_running_loop());
        {
            corio::task_group tg;
            tg.create_task(fail_after(1s, "failed before"), "early");
            tg.create_task(
                []() -> task<> {
                    try {
                        co_await corio::sleep(1h);
                    } catch (const corio::cancelled_error&) {
                        throw std::runtime_error("failed after");
                    }
                },
                "late");
            co_await corio::sleep(2s); // "early" failed, "late" was cancelled and failed
        }
        co_await corio::sleep(1s);
    });
    // "early" failed, which cancelled "late", which failed in its cleanup: both before the
    // group died, both never delivered.
    REQUIRE(rec.count("Task exception was never retrieved") == 2);
    // (The reports' task_name is empty: future_core's destructor cannot reach the task's name.)
    CHECK_THROWS_WITH(std::rethrow_exception(rec.reports[0].exception), "failed before");
    CHECK_THROWS_WITH(std::rethrow_exception(rec.reports[1].exception), "failed after");
}

TEST_CASE("destroyed without join: a child failing after the group is gone is reported") {
    corio_test::report_recorder rec;
    corio::testing::run([&rec]() -> task<> {
        rec.attach(corio::get_running_loop());
        {
            corio::task_group tg;
            tg.create_task(
                []() -> task<> {
                    bool cancelled = false;
                    try {
                        co_await corio::sleep(1h);
                    } catch (const corio::cancelled_error&) {
                        cancelled = true;
                    }
                    if (cancelled) {
                        co_await corio::sleep(1s);
                        throw std::runtime_error("failed after");
                    }
                },
                "late");
            co_await corio::sleep(1s);
        }
        co_await corio::sleep(5s);
    });
    REQUIRE(rec.count("Task exception was never retrieved") == 1);
    CHECK_THROWS_WITH(std::rethrow_exception(rec.reports[0].exception), "failed after");
}

TEST_CASE("a child's handle kept by the user: its error is retrieved through it, not reported") {
    corio_test::report_recorder rec;
    corio::testing::run([&rec]() -> task<> {
        rec.attach(corio::get_running_loop());
        corio::task_handle<int> h;
        {
            corio::task_group tg;
            h = tg.create_task(fail_after(1s, "mine"));
            co_await corio::sleep(2s);
        }
        CHECK_THROWS_WITH_AS(h.result(), "mine", std::runtime_error);
    });
    CHECK(rec.reports.empty());
}

TEST_CASE("the parent's frame destroyed by loop.close() while in join: no leak, no crash") {
    counted::reset();
    corio_test::report_recorder rec;
    {
        corio::event_loop loop;
        rec.attach(loop);
        loop.create_task([]() -> task<> {
            corio::task_group tg;
            tg.create_task([](counted) -> task<> { co_await corio::sleep(1h); }(counted(1)));
            tg.create_task([](counted) -> task<> { co_await corio::sleep(1h); }(counted(2)));
            co_await tg.join();
        });
        loop.run_until_complete([]() -> task<> { co_await corio::sleep(1ms); });
        CHECK(counted::alive() == 2);
        loop.close();
        CHECK(counted::alive() == 0);
    }
    CHECK(rec.count("Task was destroyed but it is pending!") == 3);
}

TEST_CASE("ten thousand children") {
    corio::testing::run([]() -> task<> {
        corio::task_group tg;
        std::vector<corio::task_handle<int>> hs;
        for (int i = 0; i < 10'000; ++i) hs.push_back(tg.create_task(value_after(std::chrono::seconds(i % 7), i)));
        co_await tg.join();
        long long sum = 0;
        for (auto& h : hs) sum += h.result();
        CHECK(sum == 10'000LL * 9'999 / 2);
    });
}
