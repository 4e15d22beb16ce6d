// The event loop: callbacks, timers, stop/close, I/O readiness, signals, errors, debug mode.
#include <corio/event_loop.hpp>

#include <corio/runners.hpp>
#include <corio/sleep.hpp>
#include <corio/task.hpp>
#include <corio/testing.hpp>

#include "support/helpers.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

using namespace std::chrono_literals;
using corio::task;

TEST_CASE("call_soon runs callbacks in FIFO order, on the next iteration") {
    corio::event_loop loop;
    std::vector<int> order;
    for (int i = 0; i < 5; ++i) loop.call_soon([&order, i] { order.push_back(i); });
    loop.call_soon([&] {
        order.push_back(100);
        loop.call_soon([&] { // scheduled from a callback: runs after the ones already queued
            order.push_back(200);
            loop.stop();
        });
    });
    loop.call_soon([&] { order.push_back(5); });
    CHECK(order.empty());
    loop.run_forever();
    CHECK(order == std::vector<int>{0, 1, 2, 3, 4, 100, 5, 200});
}

TEST_CASE("a cancelled handle does not run") {
    corio::event_loop loop;
    bool ran = false;
    corio::handle h = loop.call_soon([&] { ran = true; });
    CHECK_FALSE(h.cancelled());
    h.cancel();
    CHECK(h.cancelled());
    loop.call_soon([&] { loop.stop(); });
    loop.run_forever();
    CHECK_FALSE(ran);
}

TEST_CASE("call_later and call_at fire in deadline order; equal deadlines keep their order") {
    corio::testing::virtual_event_loop loop;
    std::vector<std::string> order;
    const double t0 = loop.time();
    loop.call_later(30ms, [&] { order.push_back("30ms"); });
    loop.call_later(10ms, [&] { order.push_back("10ms-a"); });
    loop.call_at(t0 + 0.020, [&] { order.push_back("20ms"); });
    loop.call_later(10ms, [&] { order.push_back("10ms-b"); });
    loop.call_later(-5ms, [&] { order.push_back("past"); });
    loop.call_later(40ms, [&] { loop.stop(); });
    loop.run_forever();
    CHECK(order == std::vector<std::string>{"past", "10ms-a", "10ms-b", "20ms", "30ms"});
    CHECK(loop.time() - t0 == doctest::Approx(0.040));
}

TEST_CASE("a cancelled timer never fires and frees its callback at once") {
    corio_test::counted::reset();
    corio::testing::virtual_event_loop loop;
    bool fired = false;
    corio::timer_handle h = loop.call_later(10ms, [&fired, c = corio_test::counted(1)] { fired = true; });
    CHECK(h.when() == doctest::Approx(loop.time() + 0.010));
    CHECK(corio_test::counted::alive() == 1);
    h.cancel();
    CHECK(corio_test::counted::alive() == 0);
    loop.call_later(20ms, [&] { loop.stop(); });
    loop.run_forever();
    CHECK_FALSE(fired);
}

TEST_CASE("timers on the real clock wait at least their delay") {
    corio::event_loop loop;
    const double t0 = loop.time();
    double fired_at = 0;
    loop.call_later(20ms, [&] {
        fired_at = loop.time();
        loop.stop();
    });
    loop.run_forever();
    CHECK(fired_at - t0 >= 0.020);
}

TEST_CASE("100,000 timers fire in deadline order") {
    corio::testing::virtual_event_loop loop;
    std::mt19937 rng(42);
    std::uniform_int_distribution<int> ms(0, 999);
    std::vector<int> fired;
    fired.reserve(100'000);
    std::vector<corio::timer_handle> cancelled;
    for (int i = 0; i < 100'000; ++i) {
        int d = ms(rng);
        auto h = loop.call_later(std::chrono::milliseconds(d), [&fired, d] { fired.push_back(d); });
        if (i % 10 == 0) cancelled.push_back(h);
    }
    for (auto& h : cancelled) h.cancel();
    loop.call_later(1s, [&] { loop.stop(); });
    loop.run_forever();
    CHECK(fired.size() == 90'000);
    CHECK(std::is_sorted(fired.begin(), fired.end()));
}

TEST_CASE("stop() lets the callbacks already scheduled run, then run_forever returns") {
    corio::event_loop loop;
    std::vector<int> order;
    loop.call_soon([&] {
        order.push_back(1);
        loop.stop();
        loop.call_soon([&] { order.push_back(3); }); // next iteration: not run
    });
    loop.call_soon([&] { order.push_back(2); }); // same iteration: runs
    loop.run_forever();
    CHECK(order == std::vector<int>{1, 2});
    CHECK_FALSE(loop.is_running());
    loop.call_soon([&] { loop.stop(); });
    loop.run_forever(); // the loop can run again; the pending callback runs now
    CHECK(order == std::vector<int>{1, 2, 3});
}

TEST_CASE("run_until_complete returns the value; a stopped loop is an error") {
    corio::event_loop loop;
    corio_test::report_recorder rec;
    rec.attach(loop);
    CHECK(loop.run_until_complete([]() -> task<int> { co_return 3; }) == 3);
    CHECK_THROWS_WITH_AS(loop.run_until_complete([&]() -> task<> {
        loop.stop();
        co_await corio::sleep(1h);
    }), "Event loop stopped before Future completed.", std::runtime_error);
    CHECK_FALSE(loop.is_running());
    loop.close(); // the task is still asleep: closing reports it
    CHECK(rec.count("Task was destroyed but it is pending!") == 1);
}

TEST_CASE("the running loop refuses to run again or close") {
    corio::event_loop loop;
    loop.run_until_complete([&]() -> task<> {
        CHECK(loop.is_running());
        CHECK(&corio::get_running_loop() == &loop);
        CHECK_THROWS_AS(loop.run_forever(), std::runtime_error);
        CHECK_THROWS_AS(loop.close(), std::runtime_error);
        corio::event_loop other;
        CHECK_THROWS_AS(other.run_forever(), std::runtime_error);
        co_return;
    });
}

TEST_CASE("a closed loop refuses new work and close is idempotent") {
    corio::event_loop loop;
    loop.close();
    CHECK(loop.is_closed());
    CHECK_NOTHROW(loop.close());
    CHECK_THROWS_WITH_AS(loop.call_soon([] {}), "Event loop is closed", std::runtime_error);
    CHECK_THROWS_AS(loop.call_later(1s, [] {}), std::runtime_error);
    CHECK_THROWS_AS(loop.call_soon_threadsafe([] {}), std::runtime_error);
    CHECK_THROWS_AS(loop.run_forever(), std::runtime_error);
    CHECK_THROWS_AS(loop.create_future<int>(), std::runtime_error);
}

TEST_CASE("close drops callbacks and timers and frees what they captured") {
    corio_test::counted::reset();
    {
        corio::event_loop loop;
        auto h = loop.call_soon([c = corio_test::counted(1)] {});
        loop.call_later(1h, [c = corio_test::counted(2)] {});
        CHECK(corio_test::counted::alive() == 2);
        loop.close();
        CHECK(corio_test::counted::alive() == 0);
    }
    CHECK(corio_test::counted::alive() == 0);
}

TEST_CASE("an exception escaping a callback goes to the exception handler and the loop carries on") {
    corio::event_loop loop;
    corio_test::report_recorder rec;
    rec.attach(loop);
    bool after = false;
    loop.call_soon([] { throw std::runtime_error("callback failed"); });
    loop.call_soon([&] {
        after = true;
        loop.stop();
    });
    loop.run_forever();
    CHECK(after);
    REQUIRE(rec.reports.size() == 1);
    CHECK(rec.reports[0].message == "Exception in callback");
    CHECK_THROWS_WITH_AS(std::rethrow_exception(rec.reports[0].exception), "callback failed",
                         std::runtime_error);
}

TEST_CASE("a throwing exception handler falls back to the default one (output on stderr)") {
    corio::event_loop loop;
    loop.set_exception_handler([](corio::event_loop&, const corio::exception_context&) {
        throw std::logic_error("handler broke");
    });
    loop.call_soon([] { throw std::runtime_error("x"); });
    loop.call_soon([&] { loop.stop(); });
    CHECK_NOTHROW(loop.run_forever()); // both reports go to stderr; the loop survives
}

TEST_CASE("reader and writer callbacks on a pipe") {
    int fds[2];
    REQUIRE(::pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0);
    corio::event_loop loop;
    std::string received;
    int writable_calls = 0;
    loop.add_writer(fds[1], [&] {
        ++writable_calls;
        CHECK(::write(fds[1], "ping", 4) == 4);
        CHECK(loop.remove_writer(fds[1]));
    });
    loop.add_reader(fds[0], [&] {
        char buf[16];
        ssize_t n = ::read(fds[0], buf, sizeof buf);
        if (n > 0) received.append(buf, static_cast<std::size_t>(n));
        if (received == "ping") {
            CHECK(loop.remove_reader(fds[0]));
            loop.stop();
        }
    });
    loop.run_forever();
    CHECK(received == "ping");
    CHECK(writable_calls == 1);
    CHECK_FALSE(loop.remove_reader(fds[0]));
    CHECK_FALSE(loop.remove_writer(fds[1]));
    ::close(fds[0]);
    ::close(fds[1]);
}

TEST_CASE("add_reader replaces the previous reader; hang-up wakes the reader") {
    int fds[2];
    REQUIRE(::pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0);
    corio::event_loop loop;
    int first = 0, second = 0;
    loop.add_reader(fds[0], [&] { ++first; });
    loop.add_reader(fds[0], [&] {
        ++second;
        char buf[8];
        if (::read(fds[0], buf, sizeof buf) == 0) { // EOF: the writer hung up
            loop.remove_reader(fds[0]);
            loop.stop();
        }
    });
    ::close(fds[1]);
    loop.run_forever();
    CHECK(first == 0);
    CHECK(second == 1);
    ::close(fds[0]);
}

TEST_CASE("add_reader rejects what cannot be watched") {
    corio::event_loop loop;
    CHECK_THROWS_AS(loop.add_reader(-1, [] {}), std::invalid_argument);
    int fd = ::open("/proc/self/exe", O_RDONLY | O_CLOEXEC); // a regular file: epoll says EPERM
    REQUIRE(fd >= 0);
    CHECK_THROWS_AS(loop.add_reader(fd, [] {}), std::system_error);
    CHECK_FALSE(loop.remove_reader(fd));
    ::close(fd);
}

TEST_CASE("a signal handler runs on the loop as a callback") {
    corio::event_loop loop;
    int calls = 0;
    loop.add_signal_handler(SIGUSR1, [&] {
        ++calls;
        loop.stop();
    });
    loop.call_soon([] { ::raise(SIGUSR1); });
    loop.run_forever();
    CHECK(calls == 1);
    CHECK(loop.remove_signal_handler(SIGUSR1));
    CHECK_FALSE(loop.remove_signal_handler(SIGUSR1));
    CHECK_THROWS_AS(loop.add_signal_handler(SIGKILL, [] {}), std::invalid_argument);
    CHECK_THROWS_AS(loop.add_signal_handler(0, [] {}), std::invalid_argument);
}

TEST_CASE("a signal wakes a loop blocked waiting, and removal restores the old disposition") {
    struct sigaction before{};
    ::sigaction(SIGUSR2, nullptr, &before);
    {
        corio::event_loop loop;
        int calls = 0;
        loop.add_signal_handler(SIGUSR2, [&] {
            ++calls;
            loop.stop();
        });
        std::thread sender([] {
            std::this_thread::sleep_for(20ms);
            ::kill(::getpid(), SIGUSR2);
        });
        loop.run_forever(); // nothing else to do: blocked in the backend until the signal
        sender.join();
        CHECK(calls == 1);
    } // close() removes the handler
    struct sigaction after{};
    ::sigaction(SIGUSR2, nullptr, &after);
    CHECK(reinterpret_cast<void*>(after.sa_handler) == reinterpret_cast<void*>(before.sa_handler));
}

TEST_CASE("one signal belongs to one loop at a time") {
    corio::event_loop a, b;
    a.add_signal_handler(SIGUSR1, [] {});
    CHECK_THROWS_AS(b.add_signal_handler(SIGUSR1, [] {}), std::runtime_error);
    a.remove_signal_handler(SIGUSR1);
    CHECK_NOTHROW(b.add_signal_handler(SIGUSR1, [] {}));
}

TEST_CASE("time() is monotonic seconds") {
    corio::event_loop loop;
    double a = loop.time();
    double b = loop.time();
    CHECK(b >= a);
    CHECK(a > 0);
}

TEST_CASE("debug mode reports slow callbacks through the exception handler") {
    corio::event_loop loop({.debug = true});
    CHECK(loop.get_debug());
    loop.slow_callback_duration = 5ms;
    corio_test::report_recorder rec;
    rec.attach(loop);
    loop.call_soon([] { std::this_thread::sleep_for(10ms); });
    loop.call_soon([] {}); // fast: not reported
    loop.call_soon([&] { loop.stop(); });
    loop.run_forever();
    REQUIRE(rec.count("Executing callback took") == 1);
}

TEST_CASE("debug mode reports slow task steps by task name") {
    corio::event_loop loop;
    loop.set_debug(true);
    loop.slow_callback_duration = 5ms;
    corio_test::report_recorder rec;
    rec.attach(loop);
    loop.run_until_complete(loop.create_task([]() -> task<> {
        std::this_thread::sleep_for(10ms); // blocking the loop: what debug mode is for
        co_return;
    }, "sloth"));
    REQUIRE(rec.count("Executing sloth took") == 1);
    CHECK(rec.reports[0].task_name == "sloth");
}

TEST_CASE("CORIO_DEBUG=1 turns debug mode on") {
    ::setenv("CORIO_DEBUG", "1", 1);
    corio::event_loop on;
    ::setenv("CORIO_DEBUG", "0", 1);
    corio::event_loop off;
    ::unsetenv("CORIO_DEBUG");
    CHECK(on.get_debug());
    CHECK_FALSE(off.get_debug());
}

TEST_CASE("stop() before run_forever runs one iteration, then returns (asyncio)") {
    corio::event_loop loop;
    std::vector<int> order;
    loop.call_soon([&] {
        order.push_back(1);
        loop.call_soon([&] { order.push_back(2); }); // next iteration: not run
    });
    loop.stop();
    loop.run_forever();
    CHECK(order == std::vector<int>{1});
    loop.call_soon([&] { loop.stop(); });
    loop.run_forever();
    CHECK(order == std::vector<int>{1, 2});
}

TEST_CASE("run_until_complete on a plain future, completed by a timer") {
    corio::testing::virtual_event_loop loop;
    auto f = loop.create_future<std::string>();
    loop.call_later(5s, [f]() mutable { f.set_result("ready"); });
    CHECK(loop.run_until_complete(f) == "ready");
    corio::event_loop other;
    auto g = other.create_future<int>();
    CHECK_THROWS_AS(loop.run_until_complete(g), std::runtime_error); // another loop's future
}
