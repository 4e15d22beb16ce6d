// corio::as_completed (asyncio.as_completed): completion order, timeouts (nothing cancelled),
// coroutines started at the call, cancellation of next(), early destruction, misuse.
#include <corio/as_completed.hpp>

#include <corio/future.hpp>
#include <corio/runners.hpp>
#include <corio/sleep.hpp>
#include <corio/task.hpp>
#include <corio/testing.hpp>

#include "support/helpers.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using corio::task;

namespace {

task<int> value_after(std::chrono::milliseconds d, int v) {
    co_await corio::sleep(d);
    co_return v;
}

double now() { return corio::get_running_loop().time(); }

/// Cancels what is left and waits for it (tests must not leave tasks behind).
template <class H>
task<> cancel_all(std::vector<H> hs) {
    for (auto& h : hs) h.cancel();
    for (auto& h : hs) co_await h.wait_done();
}

/// Drains an iterator into "value N" / "timeout_error" / "error what" entries.
template <class H>
task<std::vector<std::string>> drain(corio::as_completed_iterator<H>& it) {
    std::vector<std::string> out;
    for (;;) {
        try {
            std::optional<H> f = co_await it.next();
            if (!f) break;
            CHECK(f->done());
            out.push_back("value " + std::to_string(f->result()));
        } catch (const corio::timeout_error&) {
            out.push_back("timeout_error");
        } catch (const std::runtime_error& e) {
            out.push_back(std::string("error ") + e.what());
        }
    }
    co_return out;
}

} // namespace

TEST_CASE("next() gives the futures in the order they complete, then nullopt") {
    corio::testing::run([]() -> task<> {
        const double t0 = now();
        std::vector<corio::task_handle<int>> ts{corio::create_task(value_after(3s, 3)),
                                                corio::create_task(value_after(1s, 1)),
                                                corio::create_task(value_after(2s, 2))};
        auto it = corio::as_completed(ts);
        CHECK(it.remaining() == 3);
        std::vector<double> times;
        std::vector<int> order;
        while (auto f = co_await it.next()) {
            times.push_back(now() - t0);
            order.push_back(f->result());
        }
        CHECK(order == std::vector<int>{1, 2, 3});
        REQUIRE(times.size() == 3);
        CHECK(times[0] == doctest::Approx(1.0));
        CHECK(times[2] == doctest::Approx(3.0));
        CHECK(it.remaining() == 0);
        CHECK_FALSE(co_await it.next()); // stays finished
    });
}

TEST_CASE("the handles given are the ones passed in; already done ones come first, in input order") {
    corio::testing::run([]() -> task<> {
        corio::future<int> a, b, c;
        c.set_result(3);
        a.set_result(1);
        std::vector<corio::future<int>> fs{a, b, c};
        auto it = corio::as_completed(fs);
        auto first = co_await it.next();
        auto second = co_await it.next();
        CHECK(*first == a);
        CHECK(*second == c);
        corio::get_running_loop().call_later(1s, [b]() mutable { b.set_result(2); });
        auto third = co_await it.next();
        CHECK(*third == b);
        CHECK(third->result() == 2);
        CHECK_FALSE(co_await it.next());
    });
}

TEST_CASE("a range of task<T>, moved in, is started at the call and given as task handles") {
    corio::testing::run([]() -> task<> {
        std::vector<task<int>> work;
        work.push_back(value_after(2s, 2));
        work.push_back(value_after(1s, 1));
        auto it = corio::as_completed(std::move(work));
        static_assert(std::is_same_v<decltype(it), corio::as_completed_iterator<corio::task_handle<int>>>);
        co_await corio::sleep(5s); // they run meanwhile
        const double t0 = now();
        auto f1 = co_await it.next();
        auto f2 = co_await it.next();
        CHECK(now() == t0); // both done already: no suspension
        CHECK(f1->result() == 1);
        CHECK(f2->result() == 2);
        CHECK_FALSE(co_await it.next());
    });
}

TEST_CASE("a timeout: done ones first, then one timeout_error per pending future; none cancelled") {
    corio::testing::run([]() -> task<> {
        const double t0 = now();
        std::vector<corio::task_handle<int>> ts{corio::create_task(value_after(3s, 3)),
                                                corio::create_task(value_after(1s, 1)),
                                                corio::create_task(value_after(10s, 10)),
                                                corio::create_task(value_after(20s, 20))};
        auto it = corio::as_completed(ts, 5s);
        auto out = co_await drain(it);
        CHECK(out == std::vector<std::string>{"value 1", "value 3", "timeout_error", "timeout_error"});
        CHECK(now() - t0 == doctest::Approx(5.0));
        for (auto& t : ts) CHECK_FALSE(t.cancelled());
        CHECK(co_await ts[3] == 20); // they go on
    });
}

TEST_CASE("the timeout counts from the call; completions before it are still given") {
    corio::testing::run([]() -> task<> {
        std::vector<corio::task_handle<int>> ts{corio::create_task(value_after(1s, 1)),
                                                corio::create_task(value_after(10s, 10))};
        auto it = corio::as_completed(ts, 5s);
        co_await corio::sleep(6s); // past the deadline before the first next()
        const double t0 = now();
        CHECK(it.remaining() == 2);
        auto out = co_await drain(it);
        CHECK(now() == t0); // no waiting at all
        CHECK(out == std::vector<std::string>{"value 1", "timeout_error"});
        co_await cancel_all(ts);
    });
}

TEST_CASE("timeout spellings: optional, nullopt, zero; a timer not needed is removed") {
    corio::testing::run([]() -> task<> {
        corio::future<int> never;
        std::vector<corio::future<int>> fs{never};
        auto a = corio::as_completed(fs, std::optional<std::chrono::nanoseconds>(1s));
        auto out_a = co_await drain(a);
        CHECK(out_a == std::vector<std::string>{"timeout_error"});
        auto b = corio::as_completed(fs, 0s);
        auto out_b = co_await drain(b);
        CHECK(out_b == std::vector<std::string>{"timeout_error"});
        std::vector<corio::task_handle<int>> quick{corio::create_task(value_after(1s, 1))};
        auto c = corio::as_completed(quick, std::nullopt);
        auto out_c = co_await drain(c);
        CHECK(out_c == std::vector<std::string>{"value 1"});
        auto d = corio::as_completed(quick, 100s); // done already: no timer at all
        auto out_d = co_await drain(d);
        CHECK(out_d == std::vector<std::string>{"value 1"});
        std::vector<corio::task_handle<int>> q2{corio::create_task(value_after(1s, 2))};
        auto e = corio::as_completed(q2, 100s);
        auto out_e = co_await drain(e);
        CHECK(out_e == std::vector<std::string>{"value 2"});
        const double t0 = now();
        co_await corio::sleep(200s); // no timer left to stop the clock at 100s (ASan: no fire)
        CHECK(now() - t0 == doctest::Approx(200.0));
        CHECK_FALSE(never.cancelled());
    });
}

TEST_CASE("an empty range finishes at once; a future passed twice is given once") {
    corio::testing::run([]() -> task<> {
        std::vector<corio::future<int>> none;
        auto it = corio::as_completed(none, 1s);
        CHECK(it.remaining() == 0);
        CHECK_FALSE(co_await it.next());
        corio::future<int> f;
        f.set_result(1);
        std::vector<corio::future<int>> twice{f, f};
        auto it2 = corio::as_completed(twice);
        CHECK(it2.remaining() == 1);
        auto out_it2 = co_await drain(it2);
        CHECK(out_it2 == std::vector<std::string>{"value 1"});
    });
}

TEST_CASE("failures come out of result(); read that way, nothing is reported") {
    corio_test::report_recorder rec;
    corio::testing::virtual_event_loop loop;
    rec.attach(loop);
    loop.run_until_complete([]() -> task<> {
        std::vector<task<int>> work;
        work.push_back([]() -> task<int> {
            co_await corio::sleep(1s);
            throw std::runtime_error("bad");
        }());
        work.push_back(value_after(2s, 2));
        auto it = corio::as_completed(std::move(work));
        auto out_it = co_await drain(it);
        CHECK(out_it == std::vector<std::string>{"error bad", "value 2"});
    });
    loop.close();
    CHECK(rec.reports.empty());
}

TEST_CASE("cancelling the task in next(): cancelled_error there, nothing cancelled or skipped") {
    corio::testing::run([]() -> task<> {
        std::vector<corio::task_handle<int>> ts{corio::create_task(value_after(2s, 2))};
        auto it = corio::as_completed(ts, 10s);
        auto consumer = corio::create_task([&it]() -> task<> { co_await it.next(); });
        co_await corio::sleep(1s);
        consumer.cancel("enough");
        co_await consumer.wait_done();
        CHECK_THROWS_WITH_AS(consumer.result(), "enough", corio::cancelled_error);
        CHECK_FALSE(ts[0].cancelled());
        auto f = co_await it.next(); // carries on where it left off
        CHECK(f->result() == 2);
        CHECK_FALSE(co_await it.next());
    });
}

TEST_CASE("cancelling the task in next() while it is queued to resume") {
    corio::testing::run([]() -> task<> {
        corio::future<int> f;
        std::vector<corio::future<int>> fs{f};
        auto it = corio::as_completed(fs);
        auto consumer = corio::create_task([&it]() -> task<> { co_await it.next(); });
        co_await corio::sleep(0s);
        f.set_result(1); // wakes the consumer...
        consumer.cancel(); // ...cancelled before it resumes
        co_await consumer.wait_done();
        CHECK(consumer.cancelled());
        CHECK(it.remaining() == 1); // not taken: the next next() gives it
        CHECK(*co_await it.next() == f);
    });
}

TEST_CASE("destroying the iterator early removes every registration; the futures carry on") {
    corio::testing::run([]() -> task<> {
        corio::future<int> f;
        std::vector<corio::task_handle<int>> ts{corio::create_task(value_after(1s, 1)),
                                                corio::create_task(value_after(3s, 3))};
        {
            std::vector<corio::future<int>> fs{f, ts[0], ts[1]};
            auto it = corio::as_completed(fs, 2s);
            auto first = co_await it.next();
            CHECK(first->result() == 1);
        } // destroyed with f and ts[1] pending and its timer armed
        f.set_result(5);
        CHECK(co_await ts[1] == 3); // past the 2s timer and ts[1]'s completion: nothing fires
        co_await corio::sleep(10s);
        CHECK_FALSE(ts[1].cancelled());
    });
}

TEST_CASE("the iterator destroyed while another task awaits next(): invalid_state_error there") {
    corio::testing::run([]() -> task<> {
        corio::future<int> f;
        std::vector<corio::future<int>> fs{f};
        auto it = std::make_unique<corio::as_completed_iterator<corio::future<int>>>(corio::as_completed(fs));
        auto* raw = it.get();
        auto consumer = corio::create_task([raw]() -> task<> { co_await raw->next(); });
        co_await corio::sleep(0s);
        it.reset();
        co_await consumer.wait_done();
        CHECK_THROWS_AS(consumer.result(), corio::invalid_state_error);
        f.set_result(1);
    });
}

TEST_CASE("misuse: two next() at once, a moved-from iterator, outside a loop") {
    corio::testing::run([]() -> task<> {
        corio::future<int> f;
        std::vector<corio::future<int>> fs{f};
        auto it = corio::as_completed(fs);
        auto consumer = corio::create_task([&it]() -> task<> { co_await it.next(); });
        co_await corio::sleep(0s);
        CHECK_THROWS_AS(co_await it.next(), corio::invalid_state_error);
        f.set_result(1);
        co_await consumer;
        auto moved = std::move(it);
        CHECK_THROWS_AS(co_await it.next(), corio::invalid_state_error);
        CHECK(it.remaining() == 0);
        CHECK_FALSE(co_await moved.next());
    });
    std::vector<corio::future<int>> none;
    CHECK_THROWS_AS(corio::as_completed(none), std::runtime_error); // no running loop
}

TEST_CASE("a consumer destroyed by loop close() leaves nothing registered; nothing leaks") {
    corio_test::counted::reset();
    corio_test::report_recorder rec;
    std::optional<corio::future<corio_test::counted>> kept;
    {
        corio::testing::virtual_event_loop loop;
        rec.attach(loop);
        corio::future<corio_test::counted> f(loop);
        kept = f;
        loop.create_task([f]() -> task<> {
            std::vector<corio::future<corio_test::counted>> fs{f};
            auto it = corio::as_completed(fs, 1h);
            co_await it.next();
        });
        loop.run_until_complete([]() -> task<> { co_await corio::sleep(1s); });
        loop.close();
        CHECK(rec.count("Task was destroyed but it is pending!") == 1);
    }
    kept.reset();
    corio::testing::run([]() -> task<> {
        corio::future<corio_test::counted> g;
        g.set_result(corio_test::counted(7));
        std::vector<corio::future<corio_test::counted>> gs{g};
        auto it = corio::as_completed(gs);
        auto h = co_await it.next();
        CHECK(h->result().value == 7);
        CHECK(corio_test::counted::alive() == 1); // handles, not copies of the value
    });
    CHECK(corio_test::counted::alive() == 0);
}
