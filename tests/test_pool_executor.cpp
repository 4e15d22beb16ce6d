// async_pool_executor<T>: the port-scanner article's AsyncPoolExecutor. Queued work does not
// start; as_completed() keeps at most max_executions running and hands out each future as it
// finishes; errors stay in the futures; cancellation and early stops.
#include <corio/pool_executor.hpp>

#include <corio/async_generator.hpp>
#include <corio/future.hpp>
#include <corio/runners.hpp>
#include <corio/sleep.hpp>
#include <corio/task.hpp>
#include <corio/testing.hpp>

#include "support/helpers.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using corio::task;
using corio_test::counted;

namespace {

/// Counts the items running at once and the most seen.
struct flight {
    int now = 0;
    int peak = 0;
    int started = 0;
    int finished = 0;
};

task<int> item(flight* f, int id, std::chrono::seconds d) {
    ++f->started;
    f->peak = std::max(f->peak, ++f->now);
    struct leave {
        flight* f;
        ~leave() {
            --f->now;
            ++f->finished;
        }
    } guard{f};
    co_await corio::sleep(d);
    co_return id;
}

task<int> failing_item(flight* f, std::chrono::seconds d, const char* what) {
    ++f->started;
    co_await corio::sleep(d);
    throw std::runtime_error(what);
}

task<int> tiny(int* started) {
    ++*started;
    co_return 1;
}

} // namespace

TEST_CASE("max_executions 0 is rejected; the getters") {
    CHECK_THROWS_AS(corio::async_pool_executor<int>(0), std::invalid_argument);
    corio::async_pool_executor<int> ex(250);
    CHECK(ex.max_executions() == 250);
    CHECK(ex.size() == 0);
}

TEST_CASE("a million queued items: none starts before as_completed, then only as slots free up") {
    int started = 0;
    corio::async_pool_executor<int> ex(1000);
    for (int i = 0; i < 1'000'000; ++i) ex.add(tiny(&started)); // no loop needed to queue
    CHECK(ex.size() == 1'000'000);
    CHECK(started == 0);
    corio::run([&]() -> task<> {
        co_await corio::sleep(0s);
        CHECK(started == 0);
        {
            auto done = ex.as_completed();
            co_await corio::sleep(0s);
            CHECK(started == 0); // the generator is lazy too
            int got = 0;
            while (auto f = co_await done.next()) {
                got += f->result();
                if (got == 5000) break;
            }
            CHECK(got == 5000);
            CHECK(started >= 5000);
            CHECK(started <= 5000 + 1000);
        } // the rest stays queued, including items handed to the loop that had not run yet
        co_await corio::sleep(0s);
        CHECK(ex.size() == static_cast<std::size_t>(1'000'000 - started));
    });
    CHECK(ex.size() == static_cast<std::size_t>(1'000'000 - started)); // destroyed unstarted
}

TEST_CASE("never more than max_executions in flight; futures come in completion order") {
    corio::testing::run([]() -> task<> {
        auto& loop = corio::get_running_loop();
        flight fl;
        corio::async_pool_executor<int> ex(5);
        // Item i takes (i * 7) % 11 + 1 seconds.
        for (int i = 0; i < 50; ++i) ex.add(item(&fl, i, std::chrono::seconds((i * 7) % 11 + 1)));
        CHECK(fl.started == 0);
        auto done = ex.as_completed();
        std::vector<int> ids;
        std::vector<double> times;
        while (auto f = co_await done.next()) {
            ids.push_back(f->result());
            times.push_back(loop.time());
            CHECK(fl.now <= 5);
        }
        CHECK(ids.size() == 50);
        CHECK(fl.peak == 5);
        CHECK(fl.finished == 50);
        CHECK(std::is_sorted(times.begin(), times.end()));
        std::vector<int> sorted = ids;
        std::sort(sorted.begin(), sorted.end());
        for (int i = 0; i < 50; ++i) CHECK(sorted[i] == i);
        CHECK(ex.size() == 0);
    });
}

TEST_CASE("completion order, exactly, on virtual time") {
    corio::testing::run([]() -> task<> {
        flight fl;
        corio::async_pool_executor<int> ex(3);
        ex.add(item(&fl, 0, 5s)); // runs 0..5
        ex.add(item(&fl, 1, 1s)); // runs 0..1
        ex.add(item(&fl, 2, 3s)); // runs 0..3
        ex.add(item(&fl, 3, 1s)); // starts when 1 finishes: 1..2
        ex.add(item(&fl, 4, 1s)); // starts when 3 finishes: 2..3 (after 2, started before it)
        auto done = ex.as_completed();
        std::vector<int> ids;
        while (auto f = co_await done.next()) ids.push_back(f->result());
        CHECK(ids == std::vector<int>{1, 3, 2, 4, 0});
    });
}

TEST_CASE("no items: the generator ends at once") {
    corio::run([]() -> task<> {
        corio::async_pool_executor<int> ex(4);
        auto done = ex.as_completed();
        auto f = co_await done.next();
        CHECK_FALSE(f);
        CHECK(done.done());
    });
}

TEST_CASE("max_executions 1 runs the items one after the other, in order") {
    corio::testing::run([]() -> task<> {
        auto& loop = corio::get_running_loop();
        const double t0 = loop.time();
        flight fl;
        corio::async_pool_executor<int> ex(1);
        for (int i = 0; i < 5; ++i) ex.add(item(&fl, i, std::chrono::seconds(5 - i)));
        auto done = ex.as_completed();
        std::vector<int> ids;
        while (auto f = co_await done.next()) ids.push_back(f->result());
        CHECK(ids == std::vector<int>{0, 1, 2, 3, 4});
        CHECK(fl.peak == 1);
        CHECK(loop.time() - t0 == doctest::Approx(15.0));
    });
}

TEST_CASE("failing items: the error is in the future, the pool goes on, nothing is reported") {
    corio_test::report_recorder rec;
    corio::testing::run([&rec]() -> task<> {
        rec.attach(corio::get_running_loop());
        flight fl;
        corio::async_pool_executor<int> ex(2);
        ex.add(item(&fl, 1, 1s));
        ex.add(failing_item(&fl, 2s, "bad port"));
        ex.add(item(&fl, 3, 3s));
        ex.add(failing_item(&fl, 1s, "bad host"));
        auto done = ex.as_completed();
        std::vector<std::string> got;
        while (auto f = co_await done.next()) {
            try {
                got.push_back(std::to_string(f->result()));
            } catch (const std::runtime_error& e) {
                got.emplace_back(e.what());
            }
        }
        CHECK(got == std::vector<std::string>{"1", "bad port", "bad host", "3"});
    });
    CHECK(rec.reports.empty());
}

TEST_CASE("an error the consumer never looks at is reported as never retrieved") {
    corio_test::report_recorder rec;
    corio::testing::run([&rec]() -> task<> {
        rec.attach(corio::get_running_loop());
        flight fl;
        corio::async_pool_executor<int> ex(2);
        ex.add(failing_item(&fl, 1s, "ignored"));
        auto done = ex.as_completed();
        while (auto f = co_await done.next()) {
        }
    });
    REQUIRE(rec.count("Task exception was never retrieved") == 1);
    CHECK_THROWS_WITH(std::rethrow_exception(rec.reports[0].exception), "ignored");
}

TEST_CASE("callables and awaitables can be added; captures live until the item runs") {
    corio::testing::run([]() -> task<> {
        corio::async_pool_executor<std::string> ex(2);
        bool called = false;
        std::string prefix = "port ";
        ex.add([prefix, &called]() -> task<std::string> {
            called = true;
            co_await corio::sleep(1s);
            co_return prefix + "22";
        });
        corio::future<std::string> fut;
        ex.add(fut);
        co_await corio::sleep(0s);
        CHECK_FALSE(called);
        fut.set_result("from a future");
        auto done = ex.as_completed();
        std::vector<std::string> got;
        while (auto f = co_await done.next()) got.push_back(f->result());
        CHECK(called);
        CHECK(got == std::vector<std::string>{"from a future", "port 22"});
    });
}

TEST_CASE("void items") {
    corio::testing::run([]() -> task<> {
        int ran = 0;
        corio::async_pool_executor<void> ex(3);
        for (int i = 0; i < 7; ++i)
            ex.add([&ran, i]() -> task<> {
                co_await corio::sleep(std::chrono::seconds(i));
                ++ran;
            });
        auto done = ex.as_completed();
        int n = 0;
        while (auto f = co_await done.next()) {
            f->result();
            ++n;
        }
        CHECK(n == 7);
        CHECK(ran == 7);
    });
}

TEST_CASE("items added while as_completed runs are picked up") {
    corio::testing::run([]() -> task<> {
        flight fl;
        corio::async_pool_executor<int> ex(2);
        ex.add(item(&fl, 1, 1s));
        auto done = ex.as_completed();
        std::vector<int> ids;
        while (auto f = co_await done.next()) {
            const int id = f->result();
            ids.push_back(id);
            if (id < 4) ex.add(item(&fl, id + 1, 1s));
        }
        CHECK(ids == std::vector<int>{1, 2, 3, 4});
    });
}

TEST_CASE("the slot of a finished item is refilled before its future is handed out") {
    corio::testing::run([]() -> task<> {
        flight fl;
        corio::async_pool_executor<int> ex(1);
        ex.add(item(&fl, 1, 1s));
        ex.add(item(&fl, 2, 1s));
        auto done = ex.as_completed();
        auto f = co_await done.next();
        CHECK(f->result() == 1);
        CHECK(ex.size() == 0);     // item 2 is a task already...
        co_await corio::sleep(0s); // ...and runs while the consumer looks at item 1
        CHECK(fl.started == 2);
        auto g = co_await done.next();
        CHECK(g->result() == 2);
    });
}

TEST_CASE("items handed to the loop but not started yet go back to the queue") {
    corio::testing::run([]() -> task<> {
        flight fl;
        corio::async_pool_executor<int> ex(2);
        for (int i = 0; i < 5; ++i) ex.add(item(&fl, i, 1s));
        {
            auto done = ex.as_completed();
            auto f = co_await done.next(); // items 0 and 1 ran; item 2 took 0's slot, not run
            CHECK(f->result() == 0);
            CHECK(ex.size() == 2);
        }
        co_await corio::sleep(0s);
        CHECK(fl.started == 2);
        CHECK(ex.size() == 3); // item 2 is back, in front
        auto again = ex.as_completed();
        std::vector<int> ids;
        while (auto f = co_await again.next()) ids.push_back(f->result());
        CHECK(ids == std::vector<int>{2, 3, 4});
    });
}

TEST_CASE("cancelling the consumer: running items cancelled and awaited, queued ones never start") {
    counted::reset();
    corio_test::report_recorder rec;
    corio::testing::run([&rec]() -> task<> {
        rec.attach(corio::get_running_loop());
        auto& loop = corio::get_running_loop();
        flight fl;
        std::vector<std::string> log;
        corio::async_pool_executor<int> ex(3);
        for (int i = 0; i < 10; ++i)
            ex.add([&fl, &log, i, c = counted(i)]() -> task<int> { // the callable is kept
                ++fl.started;
                bool cancelled = false;
                try {
                    co_await corio::sleep(std::chrono::hours(i + 1));
                } catch (const corio::cancelled_error&) {
                    cancelled = true;
                }
                if (cancelled) {
                    co_await corio::sleep(std::chrono::seconds(i + 1)); // slow cleanup
                    log.push_back("item " + std::to_string(i) + " cleaned up");
                    throw corio::cancelled_error();
                }
                co_return i;
            });
        CHECK(counted::alive() == 10);
        auto consumer = corio::create_task([&ex, &log]() -> task<int> {
            auto done = ex.as_completed();
            int n = 0;
            try {
                while (auto f = co_await done.next()) n += 1 + f->result();
            } catch (const corio::cancelled_error&) {
                log.push_back("next() threw");
                throw;
            }
            co_return n;
        });
        co_await corio::sleep(30min);
        const double t_cancel = loop.time();
        consumer.cancel();
        co_await consumer.wait_done();
        CHECK(consumer.cancelled());
        CHECK(loop.time() - t_cancel == doctest::Approx(3.0)); // waited for the cleanups
        CHECK(log == std::vector<std::string>{"item 0 cleaned up", "item 1 cleaned up",
                                              "item 2 cleaned up", "next() threw"});
        CHECK(fl.started == 3);
        CHECK(ex.size() == 7);
        CHECK(counted::alive() == 7); // the queued items' frames
    });
    CHECK(counted::alive() == 0);
    CHECK(rec.reports.empty());
}

TEST_CASE("cancelled again while the running items clean up: still waits for all of them") {
    corio::testing::run([]() -> task<> {
        auto& loop = corio::get_running_loop();
        int cleaned = 0;
        corio::async_pool_executor<int> ex(2);
        for (int i = 0; i < 2; ++i)
            ex.add([&cleaned, i]() -> task<int> {
                bool cancelled = false;
                try {
                    co_await corio::sleep(1h);
                } catch (const corio::cancelled_error&) {
                    cancelled = true;
                }
                if (cancelled) {
                    co_await corio::sleep(std::chrono::seconds(5 * (i + 1)));
                    ++cleaned;
                    throw corio::cancelled_error();
                }
                co_return i;
            });
        auto consumer = corio::create_task([&ex]() -> task<> {
            auto done = ex.as_completed();
            while (auto f = co_await done.next()) {
            }
        });
        co_await corio::sleep(1s);
        const double t0 = loop.time();
        consumer.cancel("first");
        co_await corio::sleep(1s);
        CHECK_FALSE(consumer.done());
        consumer.cancel("second");
        co_await consumer.wait_done();
        CHECK(consumer.cancelled());
        CHECK(cleaned == 2);
        CHECK(loop.time() - t0 == doctest::Approx(10.0));
        CHECK(consumer.cancelling() == 2);
    });
}

TEST_CASE("cancelled between next() calls: the generator is destroyed, running items cancelled") {
    corio::testing::run([]() -> task<> {
        flight fl;
        corio::async_pool_executor<int> ex(2);
        ex.add(item(&fl, 1, 1s));
        ex.add(item(&fl, 2, 1h));
        ex.add(item(&fl, 3, 1h));
        auto consumer = corio::create_task([&ex]() -> task<> {
            auto done = ex.as_completed();
            co_await done.next();      // item 1, at 1s; item 3 took its slot
            co_await corio::sleep(1h); // cancelled here, the generator at its yield
        });
        co_await corio::sleep(10s);
        CHECK(fl.now == 2); // items 2 and 3
        consumer.cancel();
        co_await consumer.wait_done();
        co_await corio::sleep(0s);
        CHECK(consumer.cancelled());
        CHECK(fl.now == 0);
        CHECK(fl.finished == fl.started);
    });
}

TEST_CASE("stopping early leaves the rest queued; a later as_completed runs it") {
    corio::testing::run([]() -> task<> {
        flight fl;
        corio::async_pool_executor<int> ex(2);
        for (int i = 0; i < 6; ++i) ex.add(item(&fl, i, std::chrono::seconds(1 + i)));
        {
            auto done = ex.as_completed();
            auto f = co_await done.next();
            CHECK(f->result() == 0);
        } // item 1, running, is cancelled
        co_await corio::sleep(0s);
        CHECK(fl.now == 0);
        CHECK(fl.started == 2);
        CHECK(ex.size() == 4); // item 2 had taken 0's slot, unstarted: it is back
        auto again = ex.as_completed();
        std::vector<int> ids;
        while (auto f = co_await again.next()) ids.push_back(f->result());
        CHECK(ids == std::vector<int>{2, 3, 4, 5});
    });
}

TEST_CASE("two as_completed at once: the second throws invalid_state_error") {
    corio::testing::run([]() -> task<> {
        flight fl;
        corio::async_pool_executor<int> ex(2);
        ex.add(item(&fl, 1, 1s));
        auto first = ex.as_completed();
        auto second = ex.as_completed();
        auto f = co_await first.next();
        bool thrown = false;
        try {
            co_await second.next();
        } catch (const corio::invalid_state_error&) {
            thrown = true;
        }
        CHECK(thrown);
        CHECK(f->result() == 1);
        auto end = co_await first.next();
        CHECK_FALSE(end);
        auto third = ex.as_completed(); // fine once the first is over
        auto none = co_await third.next();
        CHECK_FALSE(none);
    });
}

TEST_CASE("the loop closed while items run: frames destroyed, nothing leaks") {
    counted::reset();
    corio_test::report_recorder rec;
    {
        corio::event_loop loop;
        rec.attach(loop);
        corio::async_pool_executor<int> ex(2);
        for (int i = 0; i < 5; ++i)
            ex.add([](counted) -> task<int> {
                co_await corio::sleep(1h);
                co_return 1;
            }(counted(i)));
        loop.create_task([&ex]() -> task<> {
            auto done = ex.as_completed();
            while (auto f = co_await done.next()) {
            }
        });
        loop.run_until_complete([]() -> task<> { co_await corio::sleep(1ms); });
        CHECK(counted::alive() == 5);
        loop.close();
        CHECK(counted::alive() == 3); // the queued ones live in the executor
    }
    CHECK(counted::alive() == 0);
    CHECK(rec.count("Task was destroyed but it is pending!") == 3);
}
