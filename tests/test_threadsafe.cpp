// What crosses threads: call_soon_threadsafe and its wake-up. Run under ThreadSanitizer in CI.
#include <corio/event_loop.hpp>

#include <corio/future.hpp>
#include <corio/runners.hpp>
#include <corio/sleep.hpp>
#include <corio/task.hpp>
#include <corio/testing.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using corio::task;

TEST_CASE("call_soon_threadsafe wakes a loop blocked with nothing to do") {
    corio::event_loop loop;
    std::atomic<bool> ran_on_loop_thread{false};
    const auto loop_thread = std::this_thread::get_id();
    std::thread other([&] {
        std::this_thread::sleep_for(20ms); // the loop is blocked in the backend by now
        loop.call_soon_threadsafe([&] {
            ran_on_loop_thread = std::this_thread::get_id() == loop_thread;
            loop.stop();
        });
    });
    loop.run_forever();
    other.join();
    CHECK(ran_on_loop_thread);
}

TEST_CASE("callbacks from many threads all run, each thread's in its own order") {
    constexpr int threads = 4, per_thread = 5'000;
    corio::event_loop loop;
    std::vector<std::vector<int>> seen(threads);
    std::atomic<int> finished{0};
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
            for (int i = 0; i < per_thread; ++i) loop.call_soon_threadsafe([&, t, i] { seen[t].push_back(i); });
            if (++finished == threads) loop.call_soon_threadsafe([&] { loop.stop(); });
        });
    }
    loop.run_forever();
    for (auto& th : pool) th.join();
    for (int t = 0; t < threads; ++t) {
        REQUIRE(seen[t].size() == per_thread);
        for (int i = 0; i < per_thread; ++i) CHECK(seen[t][i] == i);
    }
}

TEST_CASE("a worker thread completes a future through call_soon_threadsafe") {
    int v = corio::run([]() -> task<int> {
        auto& loop = corio::get_running_loop();
        // Handles are loop-thread objects: the worker never copies `f`; it captures a reference
        // (the awaiting frame keeps `f` alive) and only the posted callback, which runs on the
        // loop thread, touches it.
        corio::future<int> f;
        loop.begin_external_work();
        std::thread worker([&loop, &f] {
            int result = 6 * 7; // "blocking work"
            loop.call_soon_threadsafe([&f, result] { f.set_result(result); });
            loop.end_external_work();
        });
        int r = co_await f;
        worker.join();
        co_return r;
    });
    CHECK(v == 42);
}

TEST_CASE("a threadsafe handle can be cancelled from its thread before it runs") {
    corio::event_loop loop;
    std::atomic<bool> ran{false};
    std::thread other([&] {
        corio::handle h = loop.call_soon_threadsafe([&] { ran = true; });
        h.cancel();
        loop.call_soon_threadsafe([&] { loop.stop(); });
    });
    other.join();
    loop.run_forever();
    CHECK_FALSE(ran);
}

TEST_CASE("the virtual clock waits for outstanding external work instead of jumping") {
    bool timer_first = corio::testing::run([]() -> task<bool> {
        auto& loop = corio::get_running_loop();
        corio::future<int> f;
        loop.begin_external_work();
        std::thread worker([&loop, &f] {
            std::this_thread::sleep_for(20ms); // real time passes; virtual time must not
            loop.call_soon_threadsafe([&f] { f.set_result(1); });
            loop.end_external_work();
        });
        bool timed_out = false;
        loop.call_later(1h, [&] { timed_out = true; });
        co_await f;
        worker.join();
        co_return timed_out;
    });
    CHECK_FALSE(timer_first);
}

TEST_CASE("call_soon_threadsafe racing with close either runs, or throws 'Event loop is closed'") {
    for (int round = 0; round < 20; ++round) {
        auto loop = std::make_unique<corio::event_loop>();
        std::atomic<int> accepted{0}, refused{0};
        std::thread other([&] {
            for (int i = 0; i < 200; ++i) {
                try {
                    loop->call_soon_threadsafe([] {});
                    ++accepted;
                } catch (const std::runtime_error&) {
                    ++refused;
                }
            }
        });
        loop->call_soon([&] { loop->stop(); });
        loop->run_forever();
        loop->close();
        other.join();
        CHECK(accepted + refused == 200);
    }
}

TEST_CASE("debug mode: a non-thread-safe call from another thread throws, as in asyncio") {
    corio::event_loop loop({.debug = true});
    std::string error;
    bool threadsafe_ok = false;
    loop.call_soon([&] {
        std::thread other([&] {
            try {
                loop.call_soon([] {});
            } catch (const std::runtime_error& e) {
                error = e.what();
            }
            loop.call_soon_threadsafe([&] { // the one member that is fine from anywhere
                threadsafe_ok = true;
                loop.stop();
            });
        });
        other.join();
    });
    loop.run_forever();
    CHECK(error == "Non-thread-safe operation invoked on an event loop other than the current one");
    CHECK(threadsafe_ok);
    // Not running: no owner thread to check against (asyncio's behaviour too).
    std::thread([&] { CHECK_NOTHROW(loop.call_soon([] {})); }).join();
}

TEST_CASE("loops on different threads run independently") {
    constexpr int threads = 4;
    std::vector<long> sums(threads);
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&sums, t] {
            sums[t] = corio::run([]() -> task<long> {
                std::vector<corio::task_handle<int>> tasks;
                for (int i = 0; i < 1000; ++i) {
                    tasks.push_back(corio::create_task([](int i) -> task<int> {
                        co_await corio::sleep(0s);
                        co_return i;
                    }(i)));
                }
                long s = 0;
                for (auto& h : tasks) s += co_await h;
                co_return s;
            });
        });
    }
    for (auto& th : pool) th.join();
    for (long s : sums) CHECK(s == 999L * 1000 / 2);
}
