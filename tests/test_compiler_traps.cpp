// Compiler bugs around coroutines on our toolchain (g++ 12.2, clang++ 16), and what corio
// guarantees in spite of them. Every case runs in the ASan+UBSan and TSan CI jobs.
//
// - GCC PR 94794: symmetric transfer is not a tail call at -O0/-Og/-O1 or under sanitizers, so
//   a long run of synchronously completing awaits overflows the stack. corio resumes frames
//   from a trampoline (detail/task_core.hpp): see test_task.cpp, "a million synchronously
//   completing awaits", and the loop below.
// - GCC PR 100611 (GCC <= 12): a statement containing `co_await` that also creates a temporary
//   capturing lambda, or a temporary aggregate built with braces, holding anything with a
//   destructor, destroys that temporary twice. No library design avoids it (it happens even
//   with no task type involved); users must name such temporaries in an earlier statement.
//   Plain prvalue arguments (`co_await f(std::string("x"))`) are fine; this file checks the
//   safe spellings and, where the compiler is correct, the unsafe one.
// - llvm #56301 (frame writes racing with a resumer on another thread) and llvm #47179 (TLS
//   cached across a suspension resumed elsewhere): corio only ever resumes a coroutine on its
//   loop's thread, from the loop; checked below.
#include <corio/task.hpp>

#include <corio/runners.hpp>
#include <corio/sleep.hpp>

#include "support/helpers.hpp"

#include <doctest/doctest.h>

#include <string>
#include <thread>

using namespace std::chrono_literals;
using corio::task;
using corio_test::counted;

namespace {

task<int> take_counted(counted c) {
    co_await corio::sleep(0s);
    co_return c.value;
}
task<std::size_t> take_string(std::string s) {
    co_await corio::sleep(0s);
    co_return s.size();
}
struct aggregate {
    counted c;
    int k;
};
task<int> take_aggregate(aggregate a) {
    co_await corio::sleep(0s);
    co_return a.c.value * a.k;
}

} // namespace

TEST_CASE("GCC PR 100611: the spellings that are safe on every compiler") {
    counted::reset();
    int total = corio::run([]() -> task<int> {
        int sum = 0;
        // A prvalue argument with a destructor, written inside co_await: fine.
        sum += co_await take_counted(counted(1));
        sum += static_cast<int>(co_await take_string(std::string(100, 'x')));
        // Aggregates and capturing lambdas: name them first, then move them in.
        aggregate a{counted(2), 3};
        sum += co_await take_aggregate(std::move(a));
        auto fn = [c = counted(4)]() -> task<int> {
            co_await corio::sleep(0s);
            co_return c.value;
        };
        sum += co_await corio::co_invoke(std::move(fn));
        auto t = take_aggregate(aggregate{counted(5), 1}); // no co_await in this statement
        sum += co_await std::move(t);
        co_return sum;
    });
    CHECK(total == 1 + 100 + 6 + 4 + 5);
    CHECK(counted::alive() == 0);
    CHECK(counted::constructed == counted::destroyed);
}

#if defined(__clang__) || !defined(__GNUC__) || __GNUC__ >= 13
TEST_CASE("GCC PR 100611: the affected spelling is correct where the compiler is") {
    counted::reset();
    int total = corio::run([]() -> task<int> {
        int v = co_await take_aggregate(aggregate{counted(2), 5});
        v += co_await corio::co_invoke([c = counted(3)]() -> task<int> { co_return c.value; });
        co_return v;
    });
    CHECK(total == 13);
    CHECK(counted::alive() == 0);
}
#endif

TEST_CASE("GCC PR 94794: a hundred thousand awaits inside one task keep the stack flat") {
    // The stack address of the innermost resume function, on the first and the last await.
    // (A local's address would not do: coroutine locals live in the heap-allocated frame.)
    auto depth_probe = []() -> task<std::uintptr_t> {
        co_return reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
    };
    auto spread = corio::run([&]() -> task<std::ptrdiff_t> {
        std::uintptr_t first = co_await depth_probe();
        std::uintptr_t last = first;
        for (int i = 0; i < 100'000; ++i) last = co_await depth_probe();
        co_return static_cast<std::ptrdiff_t>(first) - static_cast<std::ptrdiff_t>(last);
    });
    // Without the trampoline GCC at -O0 grows ~100 bytes per await (10 MB here).
    CHECK(spread < 64 * 1024);
    CHECK(spread > -64 * 1024);
}

TEST_CASE("coroutines resume only on the loop's thread, even when woken from another") {
    corio::run([]() -> task<> {
        auto& loop = corio::get_running_loop();
        const auto loop_thread = std::this_thread::get_id();
        corio::future<> f;
        std::thread other([&loop, &f] { loop.call_soon_threadsafe([&f] { f.set_result(); }); });
        co_await f;
        CHECK(std::this_thread::get_id() == loop_thread);
        other.join();
        thread_local int tls_marker = 0;
        int* before = &tls_marker;
        co_await corio::sleep(1ms);
        CHECK(&tls_marker == before); // llvm #47179 cannot bite: same thread
        CHECK(std::this_thread::get_id() == loop_thread);
    });
}
