// Smoke test of the single header (single_include/corio.hpp): built by .ci/single-header.sh
// with only -I single_include, so it fails if the amalgamation lost or misordered anything.
//
//   async def producer(fut):                 | corio::task<> producer(corio::future<int> fut)
//       await asyncio.sleep(0.01)            |     co_await corio::sleep(10ms);
//       fut.set_result(42)                   |     fut.set_result(42);
//
//   async def main():
//       fut = asyncio.get_running_loop().create_future()
//       t = asyncio.create_task(producer(fut), name="producer")
//       value = await fut
//       await t
//       print("single header: ok")
//
//   asyncio.run(main())

#include <corio.hpp>

#include <chrono>
#include <cstdio>
#include <string>

using namespace std::chrono_literals;

namespace {

corio::task<> producer(corio::future<int> fut) {
    co_await corio::sleep(10ms);
    fut.set_result(42);
}

corio::task<int> twice(int x) {
    co_await corio::sleep(0s);
    co_return 2 * x;
}

corio::task<int> main_coro() {
    auto fut = corio::get_running_loop().create_future<int>();
    auto t = corio::create_task(producer(fut), "producer");
    const int value = co_await fut;
    co_await t;
    if (value != 42 || t.get_name() != "producer" || !t.done()) co_return 1;
    const int doubled = co_await twice(value);   // a task awaited inline
    co_return doubled == 84 ? 0 : 1;
}

} // namespace

int main() {
    if (corio::run(main_coro()) != 0) {
        std::puts("single header: FAILED");
        return 1;
    }
    std::puts("single header: ok");
    return 0;
}
