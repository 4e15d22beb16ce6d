// hello: the first asyncio program, in corio.
//
//   import asyncio                          | #include <corio/corio.hpp>
//                                           |
//   async def main():                       | corio::task<> main_coro() {
//       print("Hello ...")                  |     std::puts("Hello ...");
//       await asyncio.sleep(1)              |     co_await corio::sleep(1s);
//       print("... World!")                 |     std::puts("... World!");
//                                           | }
//   asyncio.run(main())                     | int main() { corio::run(main_coro()); }
//
// Usage: hello [--seconds S]   (how long to sleep; 1 by default)

#include <corio/corio.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

using namespace std::chrono_literals;

std::chrono::duration<double> delay = 1s;

corio::task<> main_coro() {
    std::puts("Hello ...");
    co_await corio::sleep(delay);
    std::puts("... World!");
}

int main(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--seconds") && i + 1 < argc) {
            delay = std::chrono::duration<double>(std::atof(argv[++i]));
        } else {
            std::fprintf(stderr, "usage: %s [--seconds S]\n", argv[0]);
            return 2;
        }
    }
    corio::run(main_coro());
}
