// hello: the first asyncio program, in corio, line by line.
//
//   import asyncio
//
//   async def main():
//       print("Hello ...")
//       await asyncio.sleep(1)
//       print("... World!")
//
//   asyncio.run(main())
//
// The part between the [readme:hello] markers is the program shown at the top of README.md;
// scripts/check-readme-examples keeps the two identical.

// [readme:hello]
#include <corio/corio.hpp>                      // import asyncio
#include <cstdio>
using namespace std::chrono_literals;

corio::task<> main_coro() {                     // async def main():
    std::puts("Hello ...");                     //     print("Hello ...")
    co_await corio::sleep(1s);                  //     await asyncio.sleep(1)
    std::puts("... World!");                    //     print("... World!")
}

int main() { corio::run(main_coro()); }         // asyncio.run(main())
// [/readme:hello]
