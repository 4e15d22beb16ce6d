// factorial: "Python asyncio: Great for I/O" (seeds/002). Three factorials computed concurrently,
// each step a second apart.
//
//   async def factorial(name, number):                  | corio::task<> factorial(std::string name, int number) {
//       f = 1                                           |     long f = 1;
//       for i in range(2, number + 1):                  |     for (int i = 2; i <= number; ++i) {
//           print(f"Task {name}: Compute factorial({i})...")
//           await asyncio.sleep(1)                      |         co_await corio::sleep(delay);
//           f *= i                                      |         f *= i;
//       print(f"Task {name}: factorial({number}) = {f}")|     }  std::printf(...);
//
//   async def main():                                   | corio::task<> main_coro() {
//       await asyncio.gather(                           |     co_await corio::gather(
//           factorial("A", 2),                          |         factorial("A", 2),
//           factorial("B", 3),                          |         factorial("B", 3),
//           factorial("C", 4),                          |         factorial("C", 4));
//       )                                               | }
//   asyncio.run(main())                                 | corio::run(main_coro());
//
// Usage: factorial [--delay SECONDS]   (1 by default, as the article)

#include <corio/corio.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

std::chrono::duration<double> delay{1.0};

corio::task<> factorial(std::string name, int number) {
    long f = 1;
    for (int i = 2; i <= number; ++i) {
        std::printf("Task %s: Compute factorial(%d)...\n", name.c_str(), i);
        co_await corio::sleep(delay);
        f *= i;
    }
    std::printf("Task %s: factorial(%d) = %ld\n", name.c_str(), number, f);
}

corio::task<> main_coro() {
    // Schedule three calls *concurrently*:
    co_await corio::gather(factorial("A", 2), factorial("B", 3), factorial("C", 4));
}

int main(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--delay") && i + 1 < argc) {
            delay = std::chrono::duration<double>(std::atof(argv[++i]));
        } else {
            std::fprintf(stderr, "usage: %s [--delay SECONDS]\n", argv[0]);
            return 2;
        }
    }
    corio::run(main_coro());
}
