// docs/cancellation.md, "Testing timeouts": corio::wait_for on the test clock. An hour of loop
// time passes in microseconds, always in the same order; a result due at the very deadline is
// kept.
#include <corio/corio.hpp>

#include <cassert>
#include <chrono>
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
    try {
        co_await corio::wait_for(answer_after(2h), 1h);
    } catch (const corio::timeout_error& e) {
        std::printf("%s after %.0f s of loop time\n", e.what(), loop.time() - t0);
    }
    int in_time = co_await corio::wait_for(answer_after(59min), 1h);
    int at_deadline = co_await corio::wait_for(answer_after(1h), 1h);  // same iteration: kept
    std::printf("in time: %d, at the deadline: %d\n", in_time, at_deadline);
}

int main() {
    const auto wall = std::chrono::steady_clock::now();
    corio::testing::run(test_timeout());                    // a loop on virtual time
    const auto took = std::chrono::steady_clock::now() - wall;
    assert(took < 10s);                                     // milliseconds at most, in fact
    std::puts("nearly three hours of timeouts, tested on virtual time");
}
// [/readme:virtual_time]

// out: timed out after 3600 s of loop time
// out: in time: 42, at the deadline: 42
// out: nearly three hours of timeouts, tested on virtual time
