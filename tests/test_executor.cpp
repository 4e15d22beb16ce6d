// Executors: thread_pool_executor, loop.run_in_executor, to_thread, set_default_executor,
// shutdown_default_executor, and what corio::run and loop.close() do with the default executor.
// Everything here crosses threads: CI runs it under ThreadSanitizer too. Tests assert counts and
// orders, never durations; the few sleeps only give a broken implementation room to misbehave.
#include <corio/executor.hpp>

#include <doctest/doctest.h>

#include "support/helpers.hpp"

#include <corio/runners.hpp>
#include <corio/sleep.hpp>
#include <corio/task.hpp>
#include <corio/testing.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <latch>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using corio::task;
using corio_test::settle;
using corio_test::spawn;

namespace {

/// A counted value that may be created and destroyed on any thread.
struct tcounted {
    static inline std::atomic<int> alive{0};
    int value = 0;
    explicit tcounted(int v) : value(v) { ++alive; }
    tcounted(const tcounted& o) : value(o.value) { ++alive; }
    tcounted(tcounted&& o) noexcept : value(o.value) { ++alive; }
    tcounted& operator=(const tcounted&) = default;
    ~tcounted() { --alive; }
};

struct custom_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// Polls (yielding to the loop) until the latch is open.
task<> until_open(std::latch& l) {
    while (!l.try_wait()) co_await corio::sleep(1ms);
}

} // namespace

// --- thread_pool_executor on its own -----------------------------------------------------------

TEST_CASE("thread_pool_executor: submit gives std::futures of results and exceptions") {
    corio::thread_pool_executor pool(2);
    auto a = pool.submit([](int x, int y) { return x * y; }, 6, 7);
    auto b = pool.submit([] { throw custom_error("boom"); });
    auto c = pool.submit([](std::unique_ptr<int> p) { return std::make_unique<int>(*p + 1); },
                         std::make_unique<int>(41));
    int v = 0;
    auto d = pool.submit([](int& r) { r = 5; }, std::ref(v));
    // The futures outlive the pool's threads. (Joining first also keeps ThreadSanitizer quiet:
    // libstdc++'s exception_ptr counts references inside the uninstrumented library, so a
    // worker dropping the last reference to an exception the main thread has read looks like a
    // race to it.)
    pool.shutdown(true);
    CHECK(a.get() == 42);
    CHECK_THROWS_WITH_AS(b.get(), "boom", custom_error);
    CHECK(*c.get() == 42);
    d.get();
    CHECK(v == 5);
}

TEST_CASE("thread_pool_executor: max_workers, lazily started threads") {
    CHECK_THROWS_AS(corio::thread_pool_executor(0), std::invalid_argument);
    const auto dflt = corio::thread_pool_executor::default_max_workers();
    CHECK(dflt >= 5);
    CHECK(dflt <= 32);
    CHECK(corio::thread_pool_executor().max_workers() == dflt);

    corio::thread_pool_executor pool(3);
    CHECK(pool.max_workers() == 3);
    CHECK(pool.thread_count() == 0); // nothing started before the first job
    pool.submit([] {}).get();
    CHECK(pool.thread_count() >= 1);
    // Six jobs blocked at once: never more than three threads.
    std::latch gate(1);
    std::vector<std::future<void>> fs;
    for (int i = 0; i < 6; ++i) fs.push_back(pool.submit([&gate] { gate.wait(); }));
    CHECK(pool.thread_count() == 3);
    gate.count_down();
    for (auto& f : fs) f.get();
    pool.shutdown(true);
    CHECK(pool.thread_count() == 0); // joined
}

TEST_CASE("thread_pool_executor: submit after shutdown throws") {
    corio::thread_pool_executor pool(1);
    pool.shutdown();
    CHECK_THROWS_WITH_AS(pool.submit([] { return 1; }), "cannot schedule new futures after shutdown",
                         std::runtime_error);
    CHECK_THROWS_AS(pool.execute(corio::executor_job([] {})), std::runtime_error);
    pool.shutdown(); // idempotent
}

TEST_CASE("thread_pool_executor: shutdown(wait) runs the queue; cancel_futures drops it") {
    SUBCASE("wait=true, queued jobs still run") {
        corio::thread_pool_executor pool(1);
        std::atomic<int> ran{0};
        for (int i = 0; i < 5; ++i) pool.submit([&ran] {
            std::this_thread::sleep_for(1ms);
            ++ran;
        });
        pool.shutdown(true);
        CHECK(ran == 5);
    }
    SUBCASE("cancel_futures=true: queued jobs never run, their futures are broken") {
        corio::thread_pool_executor pool(1);
        std::latch started(1), gate(1);
        std::atomic<bool> second_ran{false};
        tcounted::alive = 0;
        auto first = pool.submit([&] {
            started.count_down();
            gate.wait();
            return 1;
        });
        auto second = pool.submit([&second_ran](tcounted c) { second_ran = true; return c.value; },
                                  tcounted(2));
        started.wait();
        pool.shutdown(false, true);
        CHECK(tcounted::alive == 0); // the dropped job's arguments are gone
        CHECK_THROWS_AS(second.get(), std::future_error);
        gate.count_down();
        CHECK(first.get() == 1); // a running job finishes
        pool.shutdown(true);
        CHECK_FALSE(second_ran);
    }
    SUBCASE("wait=false returns while a job runs; the destructor waits for it") {
        std::latch gate(1);
        std::atomic<bool> finished{false};
        {
            corio::thread_pool_executor pool(1);
            pool.submit([&] {
                gate.wait();
                finished = true;
            });
            pool.shutdown(false); // would never return if it waited: the gate is still shut
            CHECK_FALSE(finished);
            gate.count_down();
        }
        CHECK(finished);
    }
}

TEST_CASE("thread_pool_executor: many threads submit at once") {
    corio::thread_pool_executor pool(3);
    constexpr int threads = 4, per_thread = 200;
    std::vector<std::thread> submitters;
    std::vector<std::vector<std::future<int>>> results(threads);
    for (int t = 0; t < threads; ++t)
        submitters.emplace_back([&, t] {
            for (int i = 0; i < per_thread; ++i) results[t].push_back(pool.submit([i] { return i; }));
        });
    for (auto& th : submitters) th.join();
    long sum = 0;
    for (auto& v : results)
        for (auto& f : v) sum += f.get();
    CHECK(sum == threads * (per_thread * (per_thread - 1) / 2));
    CHECK(pool.thread_count() <= 3);
}

TEST_CASE("thread_pool_executor: shut down, or destroyed, by one of its own jobs") {
    {
        corio::thread_pool_executor pool(2);
        auto self_stop = [&pool] {
            pool.shutdown(true); // cannot wait for itself: returns at once
            return 1;
        };
        CHECK(pool.submit(self_stop).get() == 1);
        CHECK_THROWS_AS(pool.submit([] {}), std::runtime_error);
    } // the destructor joins
    auto done = std::make_shared<std::latch>(1);
    auto pool = std::make_shared<corio::thread_pool_executor>(1);
    corio::thread_pool_executor* raw = pool.get();
    raw->execute(corio::executor_job([p = std::move(pool), done]() mutable {
        p.reset(); // the last owner: ~thread_pool_executor runs on its own worker, detaching it
        done->count_down();
    }));
    done->wait();
}

TEST_CASE("thread_pool_executor: a throwing plain job is reported, the worker carries on") {
    corio::thread_pool_executor pool(1);
    pool.execute(corio::executor_job([] { throw std::runtime_error("plain job failure (expected)"); }));
    CHECK(pool.submit([] { return 3; }).get() == 3);
    CHECK(pool.thread_count() == 1);
}

TEST_CASE("executor_job: empty, run once, moved") {
    corio::executor_job empty;
    CHECK_FALSE(empty);
    CHECK_THROWS_AS(empty(), std::bad_function_call);
    int n = 0;
    corio::executor_job j([&n] { ++n; });
    CHECK(j);
    corio::executor_job k = std::move(j);
    CHECK_FALSE(j);
    k();
    CHECK_FALSE(k);
    CHECK(n == 1);
}

// --- run_in_executor and to_thread ------------------------------------------------------------

TEST_CASE("run_in_executor: results and exceptions come back on the loop's thread") {
    const auto loop_thread = std::this_thread::get_id();
    std::atomic<std::thread::id> job_thread{};
    std::thread::id callback_thread{};
    corio::run([&]() -> task<> {
        auto& loop = corio::get_running_loop();
        auto job = [&job_thread](int a, int b) {
            job_thread = std::this_thread::get_id();
            return a + b;
        };
        corio::future<int> f = loop.run_in_executor(nullptr, job, 40, 2);
        f.add_done_callback([&](const corio::future<int>&) { callback_thread = std::this_thread::get_id(); });
        CHECK(co_await f == 42);
        CHECK(job_thread.load() != loop_thread);

        auto fail = [] { throw custom_error("worker failed"); };
        corio::future<void> g = loop.run_in_executor(nullptr, fail);
        bool caught = false;
        try {
            co_await g;
        } catch (const custom_error& e) {
            caught = std::string(e.what()) == "worker failed";
        }
        CHECK(caught);

        int side = 0;
        auto set = [&side] { side = 9; };
        co_await loop.run_in_executor(nullptr, set); // void
        CHECK(side == 9);
        co_await settle();
    });
    CHECK(callback_thread == loop_thread);
}

TEST_CASE("run_in_executor and to_thread: move-only arguments and results, std::ref") {
    tcounted::alive = 0;
    corio::run([]() -> task<> {
        auto& loop = corio::get_running_loop();
        auto inc = [](std::unique_ptr<int> p) { return std::make_unique<int>(*p + 1); };
        std::unique_ptr<int> r = co_await loop.run_in_executor(nullptr, inc, std::make_unique<int>(41));
        CHECK(*r == 42);

        auto make = [](tcounted c) { return tcounted(c.value * 2); };
        tcounted t = co_await corio::to_thread(make, tcounted(21));
        CHECK(t.value == 42);

        int target = 0;
        auto set = [](int& x, int v) { x = v; };
        co_await corio::to_thread(set, std::ref(target), 7);
        CHECK(target == 7);

        std::string s = co_await corio::to_thread([] { return std::string("from a thread"); });
        CHECK(s == "from a thread");
    });
    CHECK(tcounted::alive == 0);
}

TEST_CASE("to_thread is lazy and rethrows") {
    std::atomic<int> calls{0};
    corio::run([&]() -> task<> {
        {
            auto never = corio::to_thread([&calls] { ++calls; }); // not awaited: nothing runs
        }
        co_await settle();
        CHECK(calls == 0);
        co_await corio::to_thread([&calls] { ++calls; });
        CHECK(calls == 1);
        bool caught = false;
        try {
            co_await corio::to_thread([]() -> int { throw custom_error("nope"); });
        } catch (const custom_error&) {
            caught = true;
        }
        CHECK(caught);
    });
}

TEST_CASE("to_thread with max_workers=2 never runs more than two jobs at once") {
    std::atomic<int> running{0}, max_seen{0};
    std::atomic<bool> release{false};
    int at_peak = 0;
    corio::run([&]() -> task<> {
        auto& loop = corio::get_running_loop();
        loop.set_default_executor(std::make_shared<corio::thread_pool_executor>(2));
        auto job = [&] {
            const int now = ++running;
            int m = max_seen.load();
            while (now > m && !max_seen.compare_exchange_weak(m, now)) {
            }
            while (!release.load()) std::this_thread::sleep_for(1ms);
            --running;
            return now;
        };
        std::vector<corio::task_handle<int>> calls;
        for (int i = 0; i < 8; ++i) calls.push_back(corio::create_task(corio::to_thread(job)));
        while (running.load() < 2) co_await corio::sleep(1ms); // the loop is free meanwhile
        co_await corio::sleep(20ms); // room for a third job to start, were the limit broken
        at_peak = running.load();
        release = true;
        int total = 0;
        for (auto& c : calls) total += co_await c;
        CHECK(total >= 8);
    });
    CHECK(at_peak == 2);
    CHECK(max_seen == 2);
}

TEST_CASE("the loop keeps running other tasks while a job blocks") {
    std::latch gate(1);
    std::vector<std::string> order;
    corio::run([&]() -> task<> {
        auto& loop = corio::get_running_loop();
        auto blocked = loop.run_in_executor(nullptr, [&gate] {
            gate.wait(); // released by a task on the loop: only possible if the loop runs
            return 7;
        });
        auto ticker = spawn([&]() -> task<> {
            for (int i = 0; i < 3; ++i) {
                order.push_back("tick");
                co_await corio::sleep(1ms);
            }
            order.push_back("release");
            gate.count_down();
        });
        const int r = co_await blocked;
        order.push_back("job " + std::to_string(r));
        co_await ticker;
    });
    CHECK(order == std::vector<std::string>{"tick", "tick", "tick", "release", "job 7"});
}

// --- Cancellation -----------------------------------------------------------------------------

TEST_CASE("cancelled before it starts, a job never runs") {
    tcounted::alive = 0;
    corio::thread_pool_executor pool(1);
    std::latch started(1), gate(1);
    std::atomic<bool> second_ran{false};
    corio::run([&]() -> task<> {
        auto& loop = corio::get_running_loop();
        auto first = loop.run_in_executor(&pool, [&] {
            started.count_down();
            gate.wait();
        });
        auto second_fn = [&second_ran](tcounted c) {
            second_ran = true;
            return c.value;
        };
        corio::future<int> second = loop.run_in_executor(&pool, second_fn, tcounted(5));
        auto waiter = spawn([second]() -> task<int> { co_return co_await second; });
        co_await settle();            // the waiter awaits `second` now
        co_await until_open(started); // the only worker is busy: `second` waits in the queue
        CHECK(waiter.cancel());
        co_await waiter.wait_done();
        CHECK(waiter.cancelled());
        CHECK(second.cancelled()); // awaiting it, the task cancelled it
        gate.count_down();
        co_await first;
    });
    pool.shutdown(true);
    CHECK_FALSE(second_ran);
    CHECK(tcounted::alive == 0);
}

TEST_CASE("cancelled while it runs, a job finishes and its result is dropped") {
    tcounted::alive = 0;
    corio::thread_pool_executor pool(1);
    std::latch started(1), gate(1);
    std::atomic<bool> finished{false};
    corio::run([&]() -> task<> {
        auto& loop = corio::get_running_loop();
        auto job = [&] {
            started.count_down();
            gate.wait();
            finished = true;
            return tcounted(9);
        };
        corio::future<tcounted> f = loop.run_in_executor(&pool, job);
        co_await until_open(started);
        CHECK(f.cancel("stop"));
        CHECK(f.cancelled());
        gate.count_down();
        pool.shutdown(true); // the job has finished and posted its result
        CHECK(finished);
        co_await settle(); // the posted result reaches the loop and is dropped
        CHECK(f.cancelled());
        CHECK(tcounted::alive == 0);
    });
    CHECK(tcounted::alive == 0);
}

TEST_CASE("a cancelled to_thread: the awaiting task ends cancelled, nothing leaks") {
    tcounted::alive = 0;
    std::latch started(1), gate(1);
    corio::run([&]() -> task<> {
        auto job = [&](tcounted c) {
            started.count_down();
            gate.wait();
            return c;
        };
        auto t = corio::create_task(corio::to_thread(job, tcounted(1)));
        co_await until_open(started);
        t.cancel();
        co_await t.wait_done();
        CHECK(t.cancelled());
        gate.count_down();
    }); // corio::run waits for the job (shutdown_default_executor)
    CHECK(tcounted::alive == 0);
}

TEST_CASE("shutdown(cancel_futures) cancels the futures of queued run_in_executor calls") {
    tcounted::alive = 0;
    corio::thread_pool_executor pool(1);
    std::latch started(1), gate(1);
    std::atomic<bool> second_ran{false};
    corio::run([&]() -> task<> {
        auto& loop = corio::get_running_loop();
        auto first = loop.run_in_executor(&pool, [&] {
            started.count_down();
            gate.wait();
            return 1;
        });
        auto second_fn = [&second_ran](tcounted) { second_ran = true; };
        auto second = loop.run_in_executor(&pool, second_fn, tcounted(2));
        co_await until_open(started);
        pool.shutdown(false, true);
        co_await second.wait_done();
        CHECK(second.cancelled());
        gate.count_down();
        CHECK(co_await first == 1);
        CHECK_THROWS_WITH_AS(loop.run_in_executor(&pool, [] {}),
                             "cannot schedule new futures after shutdown", std::runtime_error);
    });
    pool.shutdown(true);
    CHECK_FALSE(second_ran);
    CHECK(tcounted::alive == 0);
}

// --- The default executor ---------------------------------------------------------------------

TEST_CASE("set_default_executor: to_thread and run_in_executor(nullptr) use it") {
    auto pool = std::make_shared<corio::thread_pool_executor>(1);
    const std::thread::id pool_thread = pool->submit([] { return std::this_thread::get_id(); }).get();
    corio::run([&]() -> task<> {
        auto& loop = corio::get_running_loop();
        CHECK_THROWS_AS(loop.set_default_executor(nullptr), std::invalid_argument);
        loop.set_default_executor(pool);
        auto id = [] { return std::this_thread::get_id(); };
        CHECK(co_await corio::to_thread(id) == pool_thread); // its only thread
        CHECK(co_await loop.run_in_executor(nullptr, id) == pool_thread);
    });
    // corio::run shut it down (waiting), though the test still owns it.
    CHECK_THROWS_AS(pool->submit([] {}), std::runtime_error);
    CHECK(pool->thread_count() == 0);
}

TEST_CASE("shutdown_default_executor waits for the jobs while the loop keeps running") {
    std::latch gate(1);
    std::atomic<bool> finished{false};
    corio::run([&]() -> task<> {
        auto& loop = corio::get_running_loop();
        auto f = loop.run_in_executor(nullptr, [&] {
            gate.wait();
            finished = true;
        });
        auto opener = spawn([&]() -> task<> {
            co_await settle();
            gate.count_down(); // the loop runs while shutdown_default_executor waits
        });
        co_await loop.shutdown_default_executor();
        CHECK(finished);
        CHECK(opener.done());
        CHECK_THROWS_WITH_AS(loop.run_in_executor(nullptr, [] {}), "Executor shutdown has been called",
                             std::runtime_error);
        bool caught = false;
        try {
            co_await corio::to_thread([] {});
        } catch (const std::runtime_error&) {
            caught = true;
        }
        CHECK(caught);
        co_await f; // its result arrived
        co_await loop.shutdown_default_executor(); // again: nothing to do
    });
}

TEST_CASE("shutdown_default_executor without a default executor does nothing") {
    corio::run([]() -> task<> {
        auto& loop = corio::get_running_loop();
        co_await loop.shutdown_default_executor();
        CHECK_THROWS_AS(loop.run_in_executor(nullptr, [] {}), std::runtime_error);
        corio::thread_pool_executor pool(1);
        CHECK(co_await loop.run_in_executor(&pool, [] { return 1; }) == 1); // explicit ones work
    });
}

TEST_CASE("corio::run shuts the default executor down and waits for its jobs") {
    auto pool = std::make_shared<corio::thread_pool_executor>(2);
    std::atomic<int> finished{0};
    corio::run([&]() -> task<> {
        auto& loop = corio::get_running_loop();
        loop.set_default_executor(pool); // the test keeps a reference: the loop's is not the last
        auto slow = [&finished] {
            std::this_thread::sleep_for(20ms);
            ++finished;
        };
        (void)loop.run_in_executor(nullptr, slow); // nobody waits for these two
        (void)loop.run_in_executor(nullptr, slow);
        co_return;
    });
    CHECK(finished == 2);
    CHECK(pool->thread_count() == 0);
}

TEST_CASE("a virtual-time loop waits for executor jobs instead of jumping ahead") {
    std::vector<std::string> order;
    corio::testing::run([&]() -> task<> {
        auto& loop = corio::get_running_loop();
        const double t0 = loop.time();
        auto sleeper = spawn([&]() -> task<> {
            co_await corio::sleep(1h);
            order.push_back("sleeper");
        });
        auto slow = [] {
            std::this_thread::sleep_for(20ms);
            return 1;
        };
        const int r = co_await loop.run_in_executor(nullptr, slow);
        order.push_back("job " + std::to_string(r));
        CHECK(loop.time() == t0); // no jump while the job ran
        co_await sleeper;
        CHECK(loop.time() - t0 == doctest::Approx(3600.0));
    });
    CHECK(order == std::vector<std::string>{"job 1", "sleeper"});
}

// --- The loop closes while jobs run ------------------------------------------------------------

TEST_CASE("run_in_executor on a closed loop throws") {
    corio::event_loop loop;
    loop.close();
    corio::thread_pool_executor pool(1);
    CHECK_THROWS_WITH_AS(loop.run_in_executor(&pool, [] {}), "Event loop is closed", std::runtime_error);
    CHECK_THROWS_AS(loop.run_in_executor(nullptr, [] {}), std::runtime_error);
}

TEST_CASE("a job finishing while its loop closes or after it is gone is dropped") {
    // The worker posts its result while (or after) the loop closes, then is destroyed: the post
    // goes through the token close() clears, never through a dangling loop. Repeated to shake
    // out races (ThreadSanitizer in CI).
    tcounted::alive = 0;
    auto pool = std::make_shared<corio::thread_pool_executor>(2);
    struct latches {
        std::latch started{1}, gate{1};
    };
    for (int round = 0; round < 20; ++round) {
        // The job may outlive this iteration: it shares the latches instead of referring to them.
        auto sync = std::make_shared<latches>();
        std::unique_ptr<corio::future<tcounted>> kept; // (std::optional: a GCC -O2 false warning)
        std::thread opener;
        {
            corio::event_loop loop;
            loop.run_until_complete([&]() -> task<> {
                auto job = [sync, round] {
                    sync->started.count_down();
                    sync->gate.wait();
                    return tcounted(round);
                };
                kept = std::make_unique<corio::future<tcounted>>(
                    corio::get_running_loop().run_in_executor(pool.get(), job));
                co_await until_open(sync->started);
            });
            opener = std::thread([sync] { sync->gate.count_down(); }); // races with close()
            loop.close();
            CHECK_FALSE(kept->done());
            if (round % 2) opener.join(); // odd rounds: the gate opens before ~event_loop
        }
        if (opener.joinable()) opener.join();
        kept.reset(); // a pending future of a destroyed loop
    }
    pool->shutdown(true);
    CHECK(tcounted::alive == 0);
}

TEST_CASE("close() does not wait for the default executor; destroying the loop does") {
    tcounted::alive = 0;
    std::latch started(1), gate(1);
    std::atomic<bool> finished{false};
    {
        corio::event_loop loop;
        loop.run_until_complete([&]() -> task<> {
            auto job = [&] {
                started.count_down();
                gate.wait();
                finished = true;
                return tcounted(1);
            };
            (void)corio::get_running_loop().run_in_executor(nullptr, job);
            co_await until_open(started);
        });
        loop.close(); // would never return if it waited: the gate is still shut
        CHECK_FALSE(finished);
        CHECK_THROWS_AS(loop.run_in_executor(nullptr, [] {}), std::runtime_error);
        gate.count_down();
    } // the loop owned the default pool: its destructor waits for the job
    CHECK(finished);
    CHECK(tcounted::alive == 0);
}
