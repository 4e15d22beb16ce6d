// Queues: asyncio.Queue / PriorityQueue / LifoQueue semantics, FIFO-fair waiters, no item or
// wake-up lost to a cancellation, join/task_done, and Python 3.13's shutdown.
#include <corio/queue.hpp>

#include <corio/future.hpp>
#include <corio/runners.hpp>
#include <corio/sleep.hpp>
#include <corio/task.hpp>
#include <corio/testing.hpp>

#include "support/helpers.hpp"

#include <doctest/doctest.h>

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using corio::task;
using corio_test::counted;
using corio_test::settle;
using corio_test::spawn;

namespace {


/// A task that gets one item from `q` and returns it.
template <class Q>
auto getter(Q& q) {
    return spawn([&q]() -> task<typename Q::value_type> { co_return co_await q.get(); });
}

/// A task that puts `v` into `q`.
template <class Q>
auto putter(Q& q, typename Q::value_type v) {
    return spawn([&q, v]() mutable -> task<> { co_await q.put(std::move(v)); });
}

template <class T, class Q>
std::vector<T> drain(Q& q) {
    std::vector<T> out;
    while (!q.empty()) out.push_back(q.get_nowait());
    return out;
}

} // namespace

TEST_CASE("queue: put_nowait/get_nowait, sizes, queue_empty and queue_full") {
    corio::testing::run([]() -> task<> {
        corio::queue<int> q(2);
        CHECK(q.maxsize() == 2);
        CHECK(q.empty());
        CHECK_FALSE(q.full());
        CHECK(q.qsize() == 0);
        CHECK_THROWS_AS(q.get_nowait(), corio::queue_empty);
        q.put_nowait(1);
        q.put_nowait(2);
        CHECK(q.full());
        CHECK(q.qsize() == 2);
        CHECK_THROWS_AS(q.put_nowait(3), corio::queue_full);
        CHECK(q.get_nowait() == 1);
        CHECK(q.get_nowait() == 2);
        CHECK(q.empty());

        corio::queue<int> unbounded;
        CHECK(unbounded.maxsize() == 0);
        for (int i = 0; i < 1000; ++i) unbounded.put_nowait(i);
        CHECK_FALSE(unbounded.full());
        CHECK(unbounded.qsize() == 1000);
        co_return;
    });
}

TEST_CASE("queue: co_await put/get complete at once when they can") {
    corio::testing::run([]() -> task<> {
        corio::queue<std::string> q;
        co_await q.put("a");
        std::string b = "b";
        co_await q.put(b);
        CHECK(q.qsize() == 2);
        CHECK(co_await q.get() == "a");
        CHECK(co_await q.get() == "b");
    });
}

TEST_CASE("queue: FIFO, LIFO and priority orders") {
    corio::testing::run([]() -> task<> {
        corio::queue<int> fifo;
        corio::lifo_queue<int> lifo;
        corio::priority_queue<int> prio;
        for (int v : {3, 1, 4, 1, 5, 9, 2, 6}) {
            fifo.put_nowait(v);
            lifo.put_nowait(v);
            prio.put_nowait(v);
        }
        CHECK(drain<int>(fifo) == std::vector<int>{3, 1, 4, 1, 5, 9, 2, 6});
        CHECK(drain<int>(lifo) == std::vector<int>{6, 2, 9, 5, 1, 4, 1, 3});
        CHECK(drain<int>(prio) == std::vector<int>{1, 1, 2, 3, 4, 5, 6, 9});

        // (priority, data) entries, as asyncio's docs suggest.
        corio::priority_queue<std::pair<int, std::string>> jobs;
        co_await jobs.put({2, "write"});
        co_await jobs.put({0, "urgent"});
        co_await jobs.put({1, "read"});
        CHECK((co_await jobs.get()).second == "urgent");
        CHECK((co_await jobs.get()).second == "read");
        CHECK((co_await jobs.get()).second == "write");

        // A comparator of one's own: std::greater gives the largest first.
        corio::priority_queue<int, std::greater<int>> largest(0, std::greater<int>());
        for (int v : {3, 7, 5}) largest.put_nowait(v);
        CHECK(drain<int>(largest) == std::vector<int>{7, 5, 3});
    });
}

TEST_CASE("queue: get waits for an item; an item put while a getter waits wakes it") {
    corio::testing::run([]() -> task<> {
        corio::queue<int> q;
        auto g = getter(q);
        co_await settle();
        CHECK_FALSE(g.done());
        co_await corio::sleep(1s);
        co_await q.put(42);
        co_await g.wait_done();
        CHECK(g.result() == 42);
        CHECK(q.empty());
    });
}

TEST_CASE("queue: put waits while the queue is full (maxsize)") {
    corio::testing::run([]() -> task<> {
        corio::queue<int> q(2);
        std::vector<int> done;
        auto producer = spawn([&]() -> task<> {
            for (int i = 0; i < 5; ++i) {
                co_await q.put(i);
                done.push_back(i);
            }
        });
        co_await settle();
        CHECK(done == std::vector<int>{0, 1});
        CHECK(q.full());
        CHECK(q.get_nowait() == 0);
        co_await settle();
        CHECK(done == std::vector<int>{0, 1, 2});
        std::vector<int> got;
        while (got.size() < 4) got.push_back(co_await q.get());
        co_await producer.wait_done();
        CHECK(got == std::vector<int>{1, 2, 3, 4});
    });
}

TEST_CASE("queue: getters are served in the order they started waiting") {
    corio::testing::run([]() -> task<> {
        corio::queue<int> q;
        std::vector<corio::task_handle<int>> gs;
        for (int i = 0; i < 4; ++i) {
            gs.push_back(getter(q));
            co_await corio::sleep(0s);
        }
        for (int i = 0; i < 4; ++i) q.put_nowait(i * 10);
        co_await settle();
        for (int i = 0; i < 4; ++i) CHECK(gs[static_cast<std::size_t>(i)].result() == i * 10);
    });
}

TEST_CASE("queue: putters are served in the order they started waiting") {
    corio::testing::run([]() -> task<> {
        corio::queue<int> q(1);
        q.put_nowait(0);
        std::vector<corio::task_handle<>> ps;
        for (int i = 1; i <= 4; ++i) {
            ps.push_back(putter(q, i));
            co_await corio::sleep(0s);
        }
        std::vector<int> got;
        for (int i = 0; i < 5; ++i) got.push_back(co_await q.get());
        CHECK(got == std::vector<int>{0, 1, 2, 3, 4});
        for (auto& p : ps) CHECK(p.done());
    });
}

TEST_CASE("queue: a newcomer's get() queues behind a getter woken but not yet run") {
    corio::testing::run([]() -> task<> {
        corio::queue<int> q;
        auto first = getter(q);
        co_await settle();
        q.put_nowait(1); // first is woken for it
        CHECK(q.qsize() == 1);
        auto later = spawn([&]() -> task<> {
            co_await corio::sleep(1s);
            q.put_nowait(2);
        });
        int mine = co_await q.get(); // arrives before first ran: waits behind it
        CHECK(mine == 2);
        CHECK(first.result() == 1);
        co_await later.wait_done();
    });
}

TEST_CASE("queue: a newcomer's put() queues behind a putter woken but not yet run") {
    corio::testing::run([]() -> task<> {
        corio::queue<int> q(1);
        q.put_nowait(0);
        auto first = putter(q, 1);
        co_await settle();
        CHECK(q.get_nowait() == 0); // first is woken for the slot
        auto later = spawn([&]() -> task<> {
            co_await corio::sleep(1s);
            CHECK(q.get_nowait() == 1);
        });
        co_await q.put(2); // waits behind first
        CHECK(first.done());
        CHECK(q.get_nowait() == 2);
        co_await later.wait_done();
    });
}

TEST_CASE("queue: get_nowait() takes the item a woken getter was woken for; that getter waits on, first in line") {
    corio::testing::run([]() -> task<> {
        corio::queue<int> q;
        auto first = getter(q);
        co_await corio::sleep(0s);
        auto second = getter(q);
        co_await settle();
        q.put_nowait(1);            // wakes first
        CHECK(q.get_nowait() == 1); // as asyncio: get_nowait takes what is there
        co_await settle();          // first found nothing: it waits again, ahead of second
        CHECK_FALSE(first.done());
        CHECK_FALSE(second.done());
        q.put_nowait(2);
        co_await settle();
        CHECK(first.done());
        CHECK(first.result() == 2);
        CHECK_FALSE(second.done());
        q.put_nowait(3);
        co_await second.wait_done();
        CHECK(second.result() == 3);
    });
}

TEST_CASE("queue: a getter woken for an item and cancelled before it runs leaves it to the next getter") {
    corio::testing::run([]() -> task<> {
        corio::queue<int> q;
        auto a = getter(q);
        co_await corio::sleep(0s);
        auto b = getter(q);
        co_await settle();
        q.put_nowait(7); // wakes a
        a.cancel();      // same iteration: a has not run
        co_await settle();
        CHECK(a.cancelled());
        REQUIRE(b.done()); // (a lost wake-up would leave b waiting)
        CHECK(b.result() == 7);
        CHECK(q.empty());
    });
}

TEST_CASE("queue: the only getter woken and cancelled leaves the item in the queue") {
    corio::testing::run([]() -> task<> {
        corio::queue<int> q;
        auto a = getter(q);
        co_await settle();
        q.put_nowait(7);
        a.cancel();
        co_await a.wait_done();
        CHECK(a.cancelled());
        CHECK(q.qsize() == 1);
        CHECK(co_await q.get() == 7);
    });
}

TEST_CASE("queue: a cancelled getter (not woken) takes nothing; the line moves on") {
    corio::testing::run([]() -> task<> {
        corio::queue<int> q;
        auto a = getter(q);
        co_await corio::sleep(0s);
        auto b = getter(q);
        co_await corio::sleep(0s);
        auto c = getter(q);
        co_await settle();
        b.cancel("enough");
        co_await b.wait_done();
        CHECK(b.cancelled());
        q.put_nowait(1);
        q.put_nowait(2);
        co_await settle();
        CHECK(a.result() == 1);
        CHECK(c.result() == 2);
    });
}

TEST_CASE("queue: a cancelled putter enqueues nothing; a slot it was woken for goes to the next") {
    counted::reset();
    corio::testing::run([]() -> task<> {
        corio::queue<counted> q(1);
        q.put_nowait(counted(0));
        auto p1 = putter(q, counted(1));
        co_await corio::sleep(0s);
        auto p2 = putter(q, counted(2));
        co_await corio::sleep(0s);
        auto p3 = putter(q, counted(3));
        co_await settle();
        // cancelled while waiting: its item dies with it
        p2.cancel();
        co_await p2.wait_done();
        CHECK(p2.cancelled());
        // p1 is woken by the free slot, and cancelled before it runs: the slot goes to p3
        CHECK(q.get_nowait().value == 0);
        p1.cancel();
        co_await settle();
        CHECK(p1.cancelled());
        CHECK(p3.done());
        CHECK(q.qsize() == 1);
        CHECK(q.get_nowait().value == 3);
        CHECK(q.empty());
    });
    CHECK(counted::alive() == 0);
}

TEST_CASE("queue: put_nowait() takes the slot a woken putter was woken for; it waits on, first in line") {
    corio::testing::run([]() -> task<> {
        corio::queue<int> q(1);
        q.put_nowait(0);
        auto p1 = putter(q, 1);
        co_await corio::sleep(0s);
        auto p2 = putter(q, 2);
        co_await settle();
        CHECK(q.get_nowait() == 0); // wakes p1
        q.put_nowait(9);            // but the slot is taken before it runs
        co_await settle();          // p1 waits again, ahead of p2
        CHECK_FALSE(p1.done());
        CHECK(q.get_nowait() == 9);
        co_await settle();
        CHECK(p1.done());
        CHECK_FALSE(p2.done());
        CHECK(q.get_nowait() == 1);
        co_await settle();
        CHECK(p2.done());
        CHECK(q.get_nowait() == 2);
    });
}

TEST_CASE("queue: join waits for task_done of every item; too many task_done is std::logic_error") {
    corio::testing::run([]() -> task<> {
        corio::queue<int> q;
        co_await q.join(); // nothing unfinished: at once
        CHECK_THROWS_WITH_AS(q.task_done(), "task_done() called too many times", std::logic_error);
        int processed = 0;
        auto worker = spawn([&]() -> task<> {
            for (;;) {
                int v = co_await q.get();
                co_await corio::sleep(std::chrono::milliseconds(v));
                ++processed;
                q.task_done();
            }
        });
        for (int i = 1; i <= 5; ++i) q.put_nowait(i * 10);
        auto& loop = corio::get_running_loop();
        const double t0 = loop.time();
        co_await q.join();
        CHECK(processed == 5);
        CHECK(loop.time() - t0 == doctest::Approx(0.150));
        CHECK(q.empty());
        worker.cancel();
        co_await worker.wait_done();
        CHECK(worker.cancelled());
        // taken but not done: join still waits
        q.put_nowait(1);
        (void)q.get_nowait();
        auto joiner = spawn([&]() -> task<> { co_await q.join(); });
        co_await settle();
        CHECK_FALSE(joiner.done());
        q.task_done();
        co_await joiner.wait_done();
        CHECK(joiner.done());
    });
}

TEST_CASE("queue: shutdown(): put throws, get drains what is left then throws, waiters are woken") {
    corio::testing::run([]() -> task<> {
        corio::queue<int> full(1);
        full.put_nowait(1);
        auto blocked_putter = putter(full, 2);
        corio::queue<int> empty;
        auto blocked_getter = getter(empty);
        co_await settle();
        full.shutdown();
        empty.shutdown();
        co_await blocked_putter.wait_done();
        co_await blocked_getter.wait_done();
        CHECK_THROWS_AS(blocked_putter.result(), corio::queue_shutdown);
        CHECK_THROWS_AS(blocked_getter.result(), corio::queue_shutdown);
        CHECK_THROWS_AS(full.put_nowait(3), corio::queue_shutdown);
        bool threw = false;
        try {
            co_await full.put(3);
        } catch (const corio::queue_shutdown&) {
            threw = true;
        }
        CHECK(threw);
        CHECK(co_await full.get() == 1); // what is left still comes out
        CHECK_THROWS_AS(full.get_nowait(), corio::queue_shutdown);
        threw = false;
        try {
            co_await full.get();
        } catch (const corio::queue_shutdown&) {
            threw = true;
        }
        CHECK(threw);
        full.task_done(); // allowed after shutdown
        co_await full.join();
    });
}

TEST_CASE("queue: getters woken by shutdown() take the items left before throwing") {
    corio::testing::run([]() -> task<> {
        corio::queue<int> q;
        auto a = getter(q);
        co_await corio::sleep(0s);
        auto b = getter(q);
        co_await settle();
        q.put_nowait(5); // a is woken for it
        q.shutdown();    // b is woken too
        co_await a.wait_done();
        co_await b.wait_done();
        CHECK(a.result() == 5);
        CHECK_THROWS_AS(b.result(), corio::queue_shutdown);
    });
}

TEST_CASE("queue: shutdown(true) drains, counts the drained items as done, wakes join and getters") {
    counted::reset();
    corio::testing::run([]() -> task<> {
        corio::queue<counted> q;
        for (int i = 0; i < 3; ++i) q.put_nowait(counted(i));
        auto taken = q.get_nowait(); // one taken, not done yet
        auto joiner = spawn([&]() -> task<> { co_await q.join(); });
        co_await settle();
        q.shutdown(true);
        CHECK(q.empty());
        CHECK(counted::alive() == 1); // the drained items are destroyed; `taken` lives
        co_await settle();
        CHECK_FALSE(joiner.done()); // the taken one is unfinished still
        q.task_done();
        co_await joiner.wait_done();
        CHECK_THROWS_AS(q.get_nowait(), corio::queue_shutdown);
        // with getters waiting
        corio::queue<int> q2;
        auto g = getter(q2);
        co_await settle();
        q2.shutdown(true);
        co_await g.wait_done();
        CHECK_THROWS_AS(g.result(), corio::queue_shutdown);
        q2.shutdown(true); // again: harmless
    });
    CHECK(counted::alive() == 0);
}

TEST_CASE("queue: get, put and join can each be cancelled") {
    counted::reset();
    corio::testing::run([]() -> task<> {
        corio::queue<counted> q(1);
        auto g = spawn([&]() -> task<> { (void)co_await q.get(); });
        co_await settle();
        g.cancel("g");
        co_await g.wait_done();
        CHECK(g.cancelled());
        CHECK_THROWS_WITH_AS(g.result(), "g", corio::cancelled_error);

        q.put_nowait(counted(1));
        auto p = putter(q, counted(2));
        co_await settle();
        p.cancel();
        co_await p.wait_done();
        CHECK(p.cancelled());
        CHECK(q.qsize() == 1);

        auto j = spawn([&]() -> task<> { co_await q.join(); });
        co_await settle();
        j.cancel();
        co_await j.wait_done();
        CHECK(j.cancelled());
        CHECK(q.get_nowait().value == 1);
        q.task_done();
        co_await q.join();
    });
    CHECK(counted::alive() == 0);
}

TEST_CASE("queue: items are moved, not copied; a move-only type works") {
    corio::testing::run([]() -> task<> {
        corio::queue<std::unique_ptr<int>> q(1);
        co_await q.put(std::make_unique<int>(1));
        auto p = spawn([&]() -> task<> { co_await q.put(std::make_unique<int>(2)); });
        co_await settle();
        auto a = co_await q.get();
        auto b = co_await q.get();
        CHECK(*a == 1);
        CHECK(*b == 2);
        corio::lifo_queue<std::unique_ptr<int>> l;
        l.put_nowait(std::make_unique<int>(3));
        CHECK(*l.get_nowait() == 3);
        corio::priority_queue<std::unique_ptr<int>, std::function<bool(const std::unique_ptr<int>&, const std::unique_ptr<int>&)>> pq(
            0, [](const std::unique_ptr<int>& x, const std::unique_ptr<int>& y) { return *x < *y; });
        pq.put_nowait(std::make_unique<int>(5));
        pq.put_nowait(std::make_unique<int>(4));
        CHECK(*pq.get_nowait() == 4);
    });
}

TEST_CASE("queue: no item leaks, whatever path it takes") {
    counted::reset();
    corio::testing::run([]() -> task<> {
        corio::queue<counted> q(2);
        co_await q.put(counted(1));
        q.put_nowait(counted(2));
        auto p = putter(q, counted(3));
        co_await settle();
        counted a = co_await q.get();
        CHECK(a.value == 1);
        co_await p.wait_done();
        CHECK(q.qsize() == 2);
        // the queue dies holding items
    });
    CHECK(counted::alive() == 0);
}

TEST_CASE("queue: get()/put() are awaitables create_task accepts") {
    corio::testing::run([]() -> task<> {
        corio::queue<int> q(1);
        auto g = corio::create_task(q.get());
        co_await settle();
        CHECK_FALSE(g.done());
        auto p1 = corio::create_task(q.put(1));
        auto p2 = corio::create_task(q.put(2));
        co_await settle();
        CHECK(g.result() == 1);
        CHECK(p2.done());
        CHECK(q.get_nowait() == 2);
        CHECK(p1.done());
    });
}

TEST_CASE("queue: destroyed while tasks wait on it: their waits end with cancelled_error") {
    corio::testing::run([]() -> task<> {
        auto q = std::make_unique<corio::queue<int>>(1);
        auto& ref = *q;
        ref.put_nowait(0);
        auto g = spawn([&ref]() -> task<> { co_await ref.join(); });
        auto p = putter(ref, 1);
        co_await settle();
        q.reset();
        co_await g.wait_done();
        co_await p.wait_done();
        CHECK(g.cancelled());
        CHECK(p.cancelled());
    });
}

TEST_CASE("queue: main returns while workers wait in get(); corio::run cancels them safely") {
    int stopped = 0;
    corio::testing::run([&stopped]() -> task<> {
        corio::queue<int> q;
        for (int i = 0; i < 3; ++i) {
            corio::create_task([&q, &stopped]() -> task<> {
                try {
                    for (;;) {
                        (void)co_await q.get();
                        q.task_done();
                    }
                } catch (const corio::cancelled_error&) {
                    ++stopped;
                    throw;
                }
            });
        }
        co_await settle(); // all three wait in get()
        q.put_nowait(1);
        q.put_nowait(2); // two workers are woken for these, and do not run before main returns
        co_return;
    });
    CHECK(stopped == 3);
}

TEST_CASE("queue: producers and consumers (asyncio's docs example, on virtual time)") {
    corio::testing::run([]() -> task<> {
        corio::queue<int> q(3);
        int total = 0;
        std::vector<corio::task_handle<>> workers;
        for (int w = 0; w < 3; ++w) {
            workers.push_back(spawn([&]() -> task<> {
                for (;;) {
                    int ms = co_await q.get();
                    co_await corio::sleep(std::chrono::milliseconds(ms));
                    total += ms;
                    q.task_done();
                }
            }));
        }
        int expected = 0;
        for (int i = 1; i <= 20; ++i) {
            co_await q.put(i);
            expected += i;
        }
        co_await q.join();
        CHECK(total == expected);
        for (auto& w : workers) w.cancel();
        for (auto& w : workers) co_await w.wait_done();
        for (auto& w : workers) CHECK(w.cancelled());
    });
}
