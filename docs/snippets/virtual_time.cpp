// docs/cancellation.md, "Testing timeouts": the same wait_for, on the test clock. An hour of
// loop time passes in microseconds, and always in the same order.
#include "wait_for.hpp"

#include <cassert>
#include <chrono>
#include <cmath>
#include <cstdio>

using namespace std::chrono_literals;

corio::task<int> answer_after(std::chrono::seconds d) {
    co_await corio::sleep(d);
    co_return 42;
}

// [readme:virtual_time]
corio::task<> test_timeout() {
    auto& loop = corio::get_running_loop();
    const double t0 = loop.time();
    bool timed_out = false;
    try {
        co_await wait_for(answer_after(2h), 1h);
    } catch (const corio::timeout_error&) {
        timed_out = true;
    }
    assert(timed_out);
    assert(std::abs(loop.time() - t0 - 3600.0) < 1e-6);    // right at the deadline
    int answer = co_await wait_for(answer_after(59min), 1h);
    assert(answer == 42);
}

int main() {
    const auto wall = std::chrono::steady_clock::now();
    corio::testing::run(test_timeout());                    // a loop on virtual time
    const auto took = std::chrono::steady_clock::now() - wall;
    assert(took < 10s);                                     // milliseconds at most, in fact
    std::puts("timeouts of an hour, tested on virtual time");
}
// [/readme:virtual_time]

// out: timeouts of an hour, tested on virtual time
