// corio::wait (asyncio.wait): return_when modes, timeouts, what is (not) cancelled, errors,
// cancellation of the waiting task, and registrations removed on every way out.
#include <corio/wait.hpp>

#include <corio/future.hpp>
#include <corio/runners.hpp>
#include <corio/sleep.hpp>
#include <corio/task.hpp>
#include <corio/testing.hpp>

#include "support/helpers.hpp"

#include <doctest/doctest.h>

#include <array>
#include <chrono>
#include <list>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using corio::task;

namespace {

task<int> value_after(std::chrono::milliseconds d, int v) {
    co_await corio::sleep(d);
    co_return v;
}

task<int> fail_after(std::chrono::milliseconds d, const char* what) {
    co_await corio::sleep(d);
    throw std::runtime_error(what);
}

double now() { return corio::get_running_loop().time(); }

/// Values of handles that must all be done with a value.
template <class H>
std::vector<int> values(const std::vector<H>& hs) {
    std::vector<int> out;
    for (const auto& h : hs) out.push_back(h.result());
    return out;
}

/// Cancels what is left and waits for it (tests must not leave tasks behind).
template <class H>
task<> cancel_all(std::vector<H> hs) {
    for (auto& h : hs) h.cancel();
    for (auto& h : hs) co_await h.wait_done();
}

} // namespace

TEST_CASE("all_completed (the default) waits for every future; done keeps input order") {
    corio::testing::run([]() -> task<> {
        const double t0 = now();
        std::vector<corio::task_handle<int>> ts{corio::create_task(value_after(3s, 3)),
                                                corio::create_task(value_after(1s, 1)),
                                                corio::create_task(value_after(2s, 2))};
        auto [done, pending] = co_await corio::wait(ts);
        CHECK(now() - t0 == doctest::Approx(3.0));
        CHECK(pending.empty());
        CHECK(values(done) == std::vector<int>{3, 1, 2});
        CHECK(done[0] == ts[0]);
    });
}

TEST_CASE("first_completed returns at the first completion; the others keep running") {
    corio::testing::run([]() -> task<> {
        const double t0 = now();
        std::vector<corio::task_handle<int>> ts{corio::create_task(value_after(3s, 3)),
                                                corio::create_task(value_after(1s, 1)),
                                                corio::create_task(value_after(2s, 2))};
        auto r = co_await corio::wait(ts, corio::first_completed);
        CHECK(now() - t0 == doctest::Approx(1.0));
        CHECK(values(r.done) == std::vector<int>{1});
        REQUIRE(r.pending.size() == 2);
        CHECK(r.pending[0] == ts[0]);
        CHECK(r.pending[1] == ts[2]);
        for (auto& p : r.pending) CHECK_FALSE(p.cancelled());
        // Nothing was cancelled: they finish on their own.
        auto r2 = co_await corio::wait(r.pending, corio::first_completed);
        CHECK(now() - t0 == doctest::Approx(2.0));
        CHECK(values(r2.done) == std::vector<int>{2});
        CHECK(co_await ts[0] == 3);
    });
}

TEST_CASE("first_completed: futures completing in the same iteration are all in done") {
    corio::testing::run([]() -> task<> {
        corio::future<int> a, b, c;
        auto& loop = corio::get_running_loop();
        loop.call_later(1s, [a, b]() mutable {
            b.set_result(2);
            a.set_result(1);
        });
        std::vector<corio::future<int>> fs{a, b, c};
        auto [done, pending] = co_await corio::wait(fs, corio::first_completed);
        CHECK(values(done) == std::vector<int>{1, 2});
        REQUIRE(pending.size() == 1);
        CHECK(pending[0] == c);
        CHECK_FALSE(c.done());
    });
}

TEST_CASE("first_completed counts a cancelled future as completed") {
    corio::testing::run([]() -> task<> {
        corio::future<int> a, b;
        corio::get_running_loop().call_later(1s, [a]() mutable { a.cancel(); });
        std::vector<corio::future<int>> fs{a, b};
        auto [done, pending] = co_await corio::wait(fs, corio::first_completed);
        REQUIRE(done.size() == 1);
        CHECK(done[0].cancelled());
        CHECK(pending.size() == 1);
    });
}

TEST_CASE("first_exception returns at the first failure, with what completed before it") {
    corio_test::report_recorder rec;
    corio::testing::virtual_event_loop loop;
    rec.attach(loop);
    loop.run_until_complete([]() -> task<> {
        const double t0 = now();
        std::vector<corio::task_handle<int>> ts{corio::create_task(value_after(1s, 1)),
                                                corio::create_task(fail_after(2s, "boom")),
                                                corio::create_task(value_after(5s, 5))};
        auto [done, pending] = co_await corio::wait(ts, corio::first_exception);
        CHECK(now() - t0 == doctest::Approx(2.0));
        REQUIRE(done.size() == 2);
        CHECK(done[0].result() == 1);
        CHECK(done[1] == ts[1]);
        REQUIRE(pending.size() == 1);
        CHECK(pending[0] == ts[2]);
        co_await cancel_all(pending);
        // ts[1]'s error is never read here; asyncio's wait(FIRST_EXCEPTION) reads it with
        // f.exception(), which counts as retrieved: no report when the task goes.
    });
    loop.close();
    CHECK(rec.reports.empty());
}

TEST_CASE("all_completed does not retrieve errors: an unread failure is reported") {
    corio_test::report_recorder rec;
    corio::testing::virtual_event_loop loop;
    rec.attach(loop);
    loop.run_until_complete([]() -> task<> {
        std::vector<corio::task_handle<int>> ts{corio::create_task(fail_after(1s, "unread"))};
        auto [done, pending] = co_await corio::wait(ts);
        CHECK(done.size() == 1);
    });
    loop.close();
    CHECK(rec.count("Task exception was never retrieved") == 1);
}

TEST_CASE("first_exception without a failure waits for all; a cancellation is not a failure") {
    corio::testing::run([]() -> task<> {
        const double t0 = now();
        corio::future<int> a, b;
        auto& loop = corio::get_running_loop();
        loop.call_later(1s, [a]() mutable { a.cancel(); });
        loop.call_later(2s, [b]() mutable { b.set_result(2); });
        std::vector<corio::future<int>> fs{a, b};
        auto [done, pending] = co_await corio::wait(fs, corio::first_exception);
        CHECK(now() - t0 == doctest::Approx(2.0));
        CHECK(done.size() == 2);
        CHECK(pending.empty());
    });
}

TEST_CASE("a condition that holds already: wait still yields once, as asyncio does") {
    corio::testing::run([]() -> task<> {
        corio::future<int> failed, pending_f;
        failed.set_exception(std::make_exception_ptr(std::runtime_error("early")));
        std::vector<corio::future<int>> fs{failed, pending_f};
        bool other_ran = false;
        auto other = corio::create_task([&]() -> task<> {
            other_ran = true;
            co_return;
        });
        const double t0 = now();
        auto [done, pending] = co_await corio::wait(fs, corio::first_exception);
        CHECK(other_ran); // the loop ran in between
        CHECK(now() == t0);
        CHECK(done.size() == 1);
        CHECK(pending.size() == 1);
        co_await other;

        // All done already, and a cancellation pending: the yield delivers it (asyncio too).
        std::vector<corio::future<int>> done_only{failed};
        corio::current_task().cancel("now");
        bool cancelled = false;
        try {
            co_await corio::wait(done_only);
        } catch (const corio::cancelled_error& e) {
            cancelled = true;
            CHECK(e.message() == "now");
        }
        CHECK(cancelled);
        corio::current_task().uncancel();
    });
}

TEST_CASE("a timeout returns what is done then; nothing is cancelled, no timeout_error") {
    corio::testing::run([]() -> task<> {
        const double t0 = now();
        std::vector<corio::task_handle<int>> ts{corio::create_task(value_after(1s, 1)),
                                                corio::create_task(value_after(10s, 10))};
        auto [done, pending] = co_await corio::wait(ts, 5s);
        CHECK(now() - t0 == doctest::Approx(5.0));
        CHECK(values(done) == std::vector<int>{1});
        REQUIRE(pending.size() == 1);
        CHECK_FALSE(pending[0].cancelled());
        CHECK(co_await pending[0] == 10); // it finishes on its own
        CHECK(now() - t0 == doctest::Approx(10.0));

        // The timer is gone once wait returns early: the clock does not stop at 100s.
        std::vector<corio::task_handle<int>> quick{corio::create_task(value_after(1s, 1))};
        auto r = co_await corio::wait(quick, corio::all_completed, 100s);
        CHECK(r.done.size() == 1);
        const double t1 = now();
        co_await corio::sleep(200s);
        CHECK(now() - t1 == doctest::Approx(200.0));
    });
}

TEST_CASE("timeout spellings: (fs, when, d), (fs, d, when), optional, zero") {
    corio::testing::run([]() -> task<> {
        const double t0 = now();
        corio::future<int> never;
        std::vector<corio::future<int>> fs{never};
        auto a = co_await corio::wait(fs, corio::first_completed, 1500ms);
        CHECK(now() - t0 == doctest::Approx(1.5));
        auto b = co_await corio::wait(fs, std::chrono::duration<double>(0.5), corio::first_exception);
        CHECK(now() - t0 == doctest::Approx(2.0));
        std::optional<std::chrono::nanoseconds> some = 1s;
        auto c = co_await corio::wait(fs, corio::all_completed, some);
        CHECK(now() - t0 == doctest::Approx(3.0));
        auto d = co_await corio::wait(fs, corio::all_completed, 0s); // one iteration
        auto e = co_await corio::wait(fs, corio::all_completed, -5s);
        CHECK(now() - t0 == doctest::Approx(3.0));
        for (auto* r : {&a, &b, &c, &d, &e}) {
            CHECK(r->done.empty());
            CHECK(r->pending.size() == 1);
        }
        CHECK_FALSE(never.cancelled());
        // No timeout: waits until done.
        corio::get_running_loop().call_later(1h, [never]() mutable { never.set_result(7); });
        auto f = co_await corio::wait(fs, corio::all_completed, std::nullopt);
        CHECK(values(f.done) == std::vector<int>{7});
    });
}

TEST_CASE("errors, thrown at the co_await: empty range, bad return_when, empty handle, other loop") {
    corio::event_loop other;
    corio::future<int> foreign(other);
    corio::run([foreign]() -> task<> {
        std::vector<corio::future<int>> none;
        auto w = corio::wait(none); // lazy: nothing thrown yet
        try {
            co_await std::move(w);
            FAIL("no error");
        } catch (const std::invalid_argument& e) {
            CHECK(std::string(e.what()) == "Set of Tasks/Futures is empty.");
        }
        corio::future<int> f;
        f.set_result(1);
        std::vector<corio::future<int>> fs{f};
        CHECK_THROWS_AS(co_await corio::wait(fs, static_cast<corio::return_when>(42)), std::invalid_argument);
        std::vector<corio::task_handle<int>> empty_handle(1);
        CHECK_THROWS_AS(co_await corio::wait(empty_handle), std::invalid_argument);
        std::vector<corio::future<int>> foreign_fs{foreign};
        CHECK_THROWS_AS(co_await corio::wait(foreign_fs), std::runtime_error);
    });
}

TEST_CASE("a future passed twice is listed once, as asyncio's set") {
    corio::run([]() -> task<> {
        corio::future<int> a, b;
        a.set_result(1);
        std::vector<corio::future<int>> fs{a, b, a, b};
        auto [done, pending] = co_await corio::wait(fs, corio::first_completed);
        REQUIRE(done.size() == 1);
        CHECK(done[0] == a);
        REQUIRE(pending.size() == 1);
        CHECK(pending[0] == b);
    });
}

TEST_CASE("any range of handles: task_ref of mixed types, std::list, std::array, future<void>") {
    corio::testing::run([]() -> task<> {
        auto i = corio::create_task(value_after(1s, 1));
        auto s = corio::create_task([]() -> task<std::string> {
            co_await corio::sleep(2s);
            co_return "two";
        });
        std::vector<corio::task_ref> refs{i, s};
        auto [done, pending] = co_await corio::wait(refs);
        CHECK(done.size() == 2);
        CHECK(done[1].get_name() == s.get_name());
        CHECK(s.result() == "two");

        corio::future<> v1, v2;
        std::list<corio::future<>> l{v1, v2};
        v2.set_result();
        auto r1 = co_await corio::wait(l, corio::first_completed);
        CHECK(r1.done.size() == 1);
        CHECK(r1.done[0] == v2);
        std::array<corio::future<>, 2> arr{v1, v2};
        v1.set_result();
        auto r2 = co_await corio::wait(arr);
        CHECK(r2.done.size() == 2);
        CHECK(r2.pending.empty());
    });
}

TEST_CASE("cancelling the waiting task: cancelled_error at the await, the futures carry on") {
    corio::testing::run([]() -> task<> {
        corio::future<int> f;
        auto slow = corio::create_task(value_after(10s, 10));
        std::vector<corio::future<int>> fs{f, slow};
        auto waiter = corio::create_task([fs]() -> task<> {
            co_await corio::wait(fs, corio::all_completed, 5s); // with a timer, too
        });
        co_await corio::sleep(1s);
        CHECK(waiter.cancel("stop"));
        co_await waiter.wait_done();
        CHECK(waiter.cancelled());
        CHECK_THROWS_WITH_AS(waiter.result(), "stop", corio::cancelled_error);
        CHECK_FALSE(f.cancelled());
        CHECK_FALSE(slow.cancelled());
        // The registrations are gone: completing the futures and passing the timeout touch
        // nothing of the dead waiter (ASan would tell).
        f.set_result(1);
        CHECK(co_await slow == 10);
        co_await corio::sleep(10s);
    });
}

TEST_CASE("cancelling a task waiting on wait(), while it is queued to resume") {
    corio::testing::run([]() -> task<> {
        corio::future<int> f;
        std::vector<corio::future<int>> fs{f};
        auto waiter = corio::create_task([fs]() -> task<> { co_await corio::wait(fs); });
        co_await corio::sleep(0s);
        f.set_result(1);  // wakes the waiter...
        waiter.cancel();  // ...which is cancelled before it resumes
        co_await waiter.wait_done();
        CHECK(waiter.cancelled());
        CHECK(f.result() == 1);
    });
}

TEST_CASE("a waiting task destroyed by loop close() leaves nothing registered") {
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
            co_await corio::wait(fs, corio::all_completed, 1h);
        });
        loop.run_until_complete([]() -> task<> { co_await corio::sleep(1s); });
        loop.close(); // destroys the waiting frame: its node leaves f, its timer the heap
        CHECK(rec.count("Task was destroyed but it is pending!") == 1);
    }
    kept.reset(); // f's waiter list is empty (a dangling node would be touched here)
    CHECK(corio_test::counted::alive() == 0);
}

TEST_CASE("results are handles: values are not copied, nothing leaks") {
    corio_test::counted::reset();
    corio::testing::run([]() -> task<> {
        auto t = corio::create_task([]() -> task<corio_test::counted> {
            co_await corio::sleep(1s);
            co_return corio_test::counted(5);
        });
        std::vector<corio::task_handle<corio_test::counted>> ts{t};
        auto [done, pending] = co_await corio::wait(ts);
        CHECK(done[0].result().value == 5);
        CHECK(corio_test::counted::alive() == 1);
    });
    CHECK(corio_test::counted::alive() == 0);
}

TEST_CASE("wait() is a task<wait_result<H>>: it can run as a task of its own") {
    corio::testing::run([]() -> task<> {
        std::vector<corio::task_handle<int>> ts{corio::create_task(value_after(1s, 1))};
        auto w = corio::create_task(corio::wait(ts));
        corio::wait_result<corio::task_handle<int>> r = co_await w;
        CHECK(values(r.done) == std::vector<int>{1});
    });
}
