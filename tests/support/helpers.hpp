#pragma once
// Test helpers: a counted type that checks lifetimes, and a recorder for the loop's reports.

#include <corio/event_loop.hpp>
#include <corio/sleep.hpp>
#include <corio/task.hpp>

#include <chrono>
#include <utility>

#include <string>
#include <vector>

namespace corio_test {

/// Counts constructions and destructions, to prove nothing is leaked or destroyed twice.
struct counted {
    static inline int constructed = 0;
    static inline int destroyed = 0;
    static int alive() { return constructed - destroyed; }
    static void reset() { constructed = destroyed = 0; }

    int value = 0;
    bool moved_from = false;
    counted() { ++constructed; }
    explicit counted(int v) : value(v) { ++constructed; }
    counted(const counted& o) : value(o.value) { ++constructed; }
    counted(counted&& o) noexcept : value(o.value) {
        o.moved_from = true;
        ++constructed;
    }
    counted& operator=(const counted&) = default;
    counted& operator=(counted&&) = default;
    ~counted() { ++destroyed; }
};

/// Installs itself as the loop's exception handler and keeps every report.
struct report_recorder {
    std::vector<corio::exception_context> reports;

    void attach(corio::event_loop& loop) {
        loop.set_exception_handler(
            [this](corio::event_loop&, const corio::exception_context& c) { reports.push_back(c); });
    }
    std::size_t count(const std::string& message_prefix) const {
        std::size_t n = 0;
        for (const auto& r : reports)
            if (r.message.rfind(message_prefix, 0) == 0) ++n;
        return n;
    }
};

/// Lets every task that is ready run a few times (tasks created now take their first step on
/// the next iteration).
inline corio::task<> settle(int rounds = 5) {
    for (int i = 0; i < rounds; ++i) co_await corio::sleep(std::chrono::seconds(0));
}

/// create_task from a plain function, not a coroutine: a coroutine called inside `co_await`
/// must not be handed a temporary capturing lambda under GCC 12 (GCC PR 100611, see
/// test_compiler_traps.cpp), and this keeps test bodies free of that trap.
template <class F>
auto spawn(F body) {
    return corio::create_task(std::move(body));
}

} // namespace corio_test
