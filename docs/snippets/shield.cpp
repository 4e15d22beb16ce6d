// docs/cancellation.md, "Work that must not be cancelled": corio::shield. Cancelling the task
// that awaits a shield stops its waiting, not the shielded work; wait_for(shield(t), d) gives up
// waiting at the deadline and leaves t running.
#include <corio/corio.hpp>

#include <chrono>
#include <cstdio>

using namespace std::chrono_literals;

corio::task<int> save_to_disk() {
    co_await corio::sleep(50ms);
    std::puts("save: written");
    co_return 7;
}

// [readme:shield]
corio::task<> request(corio::task_handle<int> save) {
    int n = co_await corio::shield(save);   // cancel() of this task stops the waiting only
    std::printf("request: saved %d\n", n);
}

corio::task<> main_coro() {
    auto save = corio::create_task(save_to_disk());
    auto req = corio::create_task(request(save));
    co_await corio::sleep(10ms);
    req.cancel();                           // the client went away
    co_await req.wait_done();
    std::printf("request cancelled=%d, save done=%d\n", req.cancelled(), save.done());

    try {                                   // a timeout on the waiting, not on the work
        co_await corio::wait_for(corio::shield(save), 10ms);
    } catch (const corio::timeout_error&) {
        std::printf("timeout_error, save cancelled=%d\n", save.cancelled());
    }
    std::printf("save: %d\n", co_await save);   // it went on, and finished
}
// [/readme:shield]

// Virtual time: the same order of events however busy the machine is.
int main() { corio::testing::run(main_coro()); }

// out: request cancelled=1, save done=0
// out: timeout_error, save cancelled=0
// out: save: written
// out: save: 7
