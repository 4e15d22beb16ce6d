// docs/cancellation.md, "What else is cancelled": cancelling a task that awaits a future or
// another task cancels that too; wait_done() waits without that.
#include <corio/corio.hpp>

#include <cstdio>

using namespace std::chrono_literals;

corio::task<int> slow_answer() {
    co_await corio::sleep(1h);
    co_return 42;
}

corio::task<> main_coro() {
// [readme:propagation]
    corio::future<int> reply;                           // nobody ever sets it
    auto child = corio::create_task(slow_answer());

    auto on_future = corio::create_task([reply]() -> corio::task<int> { co_return co_await reply; });
    auto on_task = corio::create_task([child]() -> corio::task<int> { co_return co_await child; });
    auto watcher = corio::create_task([child]() -> corio::task<> { co_await child.wait_done(); });
    co_await corio::sleep(0s);                          // all three are waiting now

    watcher.cancel();                                   // stops waiting; child keeps running
    co_await watcher.wait_done();
    std::printf("watcher cancelled=%d, child done=%d\n", watcher.cancelled(), child.done());

    on_future.cancel();                                 // the awaited future is cancelled too
    on_task.cancel();                                   // ... and so is the awaited task
    co_await on_future.wait_done();
    co_await on_task.wait_done();
    std::printf("reply cancelled=%d, child cancelled=%d\n", reply.cancelled(), child.cancelled());
// [/readme:propagation]
}

int main() { corio::run(main_coro()); }

// out: watcher cancelled=1, child done=0
// out: reply cancelled=1, child cancelled=1
