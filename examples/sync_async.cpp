// sync_async: "AsyncIO for the Working Python Developer" (seeds/001), 1-sync-async-execution.py.
// Two coroutines hand control to each other at each `await asyncio.sleep(0)`.
//
//   async def foo():                                 | corio::task<> foo() {
//       print('Running in foo')                      |     std::puts("Running in foo");
//       await asyncio.sleep(0)                       |     co_await corio::sleep(0s);
//       print('Explicit context switch to foo again')|     std::puts("Explicit context switch to foo again");
//                                                    | }
//   async def bar():                                 | corio::task<> bar() {
//       print('Explicit context to bar')             |     std::puts("Explicit context to bar");
//       await asyncio.sleep(0)                       |     co_await corio::sleep(0s);
//       print('Implicit context switch back to bar') |     std::puts("Implicit context switch back to bar");
//                                                    | }
//   async def main():                                | corio::task<> main_coro() {
//       tasks = [foo(), bar()]                       |
//       await asyncio.gather(*tasks)                 |     co_await corio::gather(foo(), bar());
//                                                    | }
//   asyncio.run(main())                              | corio::run(main_coro());

#include <corio/corio.hpp>

#include <cstdio>

using namespace std::chrono_literals;

corio::task<> foo() {
    std::puts("Running in foo");
    co_await corio::sleep(0s);
    std::puts("Explicit context switch to foo again");
}

corio::task<> bar() {
    std::puts("Explicit context to bar");
    co_await corio::sleep(0s);
    std::puts("Implicit context switch back to bar");
}

corio::task<> main_coro() { co_await corio::gather(foo(), bar()); }

int main() { corio::run(main_coro()); }
