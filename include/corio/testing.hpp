#pragma once
/// \file corio/testing.hpp
/// The test clock: event loops whose time is virtual.
///
/// Under virtual time, `loop.time()` stands still while anything is ready to run; when every
/// task is idle (nothing ready, no I/O ready, no work outstanding on other threads) the clock
/// jumps straight to the next timer. A test of a one-hour timeout takes microseconds, and timers
/// fire in exactly the same order on every run. I/O still happens for real: when nothing but
/// I/O is pending, the loop waits for it.
///
///     TEST_CASE("the timeout fires after an hour of loop time") {
///         corio::testing::run([]() -> corio::task<> {
///             auto& loop = corio::get_running_loop();
///             double t0 = loop.time();
///             co_await corio::sleep(std::chrono::hours(1));
///             CHECK(loop.time() - t0 == doctest::Approx(3600.0));
///         });
///     }
///
/// Work on other threads: a virtual-time loop with work outstanding elsewhere (bracketed by
/// `event_loop::begin_external_work`/`end_external_work`, as `to_thread` and `run_in_executor`
/// do) blocks for it instead of jumping ahead. A running subprocess or a socket peer counts
/// as I/O, not as such work: a timer can fire before it answers. Without that bracket,
/// the clock jumps to the next timer even while another thread is about to call
/// `call_soon_threadsafe`.

#include <corio/event_loop.hpp>
#include <corio/runners.hpp>

#include <utility>

/// The test clock: `run` and `virtual_event_loop` on virtual time.
namespace corio::testing {

/// An event loop on virtual time.
class virtual_event_loop : public event_loop {
public:
    virtual_event_loop() : event_loop(loop_options{.virtual_time = true}) {}
};

/// `corio::run` on virtual time.
template <class Aw>
auto run(Aw&& main, run_options options = {}) {
    options.virtual_time = true;
    return corio::run(std::forward<Aw>(main), options);
}

} // namespace corio::testing
