// docs/cancellation.md, "Task groups": the first child that fails cancels the others; join()
// waits for all of them, then throws every error in a corio::exception_group.
#include <corio/corio.hpp>

#include <chrono>
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string>

using namespace std::chrono_literals;

corio::task<int> fetch(std::string name, std::chrono::milliseconds d, bool fails) {
    co_await corio::sleep(d);
    if (fails) throw std::runtime_error(name + ": connection refused");
    co_return 1;
}

corio::task<int> upload() {
    try {
        co_await corio::sleep(1h);
    } catch (const corio::cancelled_error&) {
        throw std::runtime_error("upload: could not roll back");   // cleanup that fails
    }
    co_return 2;
}

// [readme:task_group]
corio::task<> main_coro() {
    corio::task_group tg;                                   // async with TaskGroup() as tg:
    auto a = tg.create_task(fetch("a", 10ms, false));
    auto b = tg.create_task(fetch("b", 20ms, true));       // fails: the others are cancelled
    auto c = tg.create_task(fetch("c", 1h, false));
    auto d = tg.create_task(upload());
    try {
        co_await tg.join();                                 // waits for all four
    } catch (const corio::exception_group& group) {
        std::printf("%s\n", group.what());
        for (const std::exception_ptr& e : group.exceptions()) {
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& error) {
                std::printf("  %s\n", error.what());
            }
        }
    }
    std::printf("a=%d, c cancelled=%d, d failed=%d\n", a.result(), c.cancelled(), d.exception() != nullptr);
}
// [/readme:task_group]

int main() { corio::run(main_coro()); }

// out: unhandled errors in a TaskGroup (2 sub-exceptions)
// out:   b: connection refused
// out:   upload: could not roll back
// out: a=1, c cancelled=1, d failed=1
