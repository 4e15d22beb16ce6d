// loop_stop: "Python asyncio: Great for I/O" (seeds/002), the cancellation example.
// nested() stops the loop before it can print 42, so nothing is printed but the error that
// asyncio.run raises (Python: RuntimeError: Event loop stopped before Future completed.).
//
//   async def nested():                          | corio::task<> nested() {
//       loop = asyncio.get_running_loop()        |     auto& loop = corio::get_running_loop();
//       loop.stop()                              |     loop.stop();
//       await asyncio.sleep(1)                   |     co_await corio::sleep(1s);
//       print("42")                              |     std::puts("42");
//                                                | }
//   async def foo():                             | corio::task<> foo() {
//       task = asyncio.ensure_future(nested())   |     auto task = corio::ensure_future(nested());
//       await asyncio.sleep(3)                   |     co_await corio::sleep(3s);
//                                                | }
//   asyncio.run(foo())                           | corio::run(foo());

#include <corio/corio.hpp>

#include <cstdio>
#include <stdexcept>

using namespace std::chrono_literals;

corio::task<> nested() {
    auto& loop = corio::get_running_loop();
    loop.stop();
    co_await corio::sleep(1s);
    std::puts("42");
}

corio::task<> foo() {
    auto task = corio::ensure_future(nested());
    co_await corio::sleep(3s);
}

int main() {
    try {
        corio::run(foo());
    } catch (const std::runtime_error& e) {
        std::printf("RuntimeError: %s\n", e.what());
    }
}
