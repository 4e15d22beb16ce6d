// cooperative: "AsyncIO for the Working Python Developer" (seeds/001), 1b-cooperatively-scheduled.py.
// gr1 and gr2 "block" on two-second requests; meanwhile gr3 gets work done.
//
//   start = time.time()                               | const auto start = clock::now();
//   def tic():                                        | std::string tic() { ... }
//       return 'at %1.1f seconds' % (time.time() - start)
//
//   async def gr1():                                  | corio::task<> gr1() {
//       print('gr1 started work: {}'.format(tic()))   |     std::printf("gr1 started work: %s\n", tic().c_str());
//       await asyncio.sleep(2)                        |     co_await corio::sleep(2s);
//       print('gr1 ended work: {}'.format(tic()))     |     std::printf("gr1 ended work: %s\n", tic().c_str());
//   async def gr2(): ... (the same, "gr2 Ended work") |
//   async def gr3():                                  | corio::task<> gr3() {
//       print("Let's do some stuff while the coroutines are blocked, {}".format(tic()))
//       await asyncio.sleep(1)                        |     co_await corio::sleep(1s);
//       print("Done!")                                |     std::puts("Done!");
//
//   async def main():                                 | corio::task<> main_coro() {
//       tasks = [gr1(), gr2(), gr3()]                 |
//       await asyncio.gather(*tasks)                  |     co_await corio::gather(gr1(), gr2(), gr3());
//   asyncio.run(main())                               | corio::run(main_coro());

#include <corio/corio.hpp>

#include <chrono>
#include <cstdio>
#include <string>

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

const auto start = clock_type::now();

std::string tic() {
    char buf[32];
    std::snprintf(buf, sizeof buf, "at %1.1f seconds",
                  std::chrono::duration<double>(clock_type::now() - start).count());
    return buf;
}

corio::task<> gr1() {
    // Busy waits for a second, but we don't want to stick around...
    std::printf("gr1 started work: %s\n", tic().c_str());
    co_await corio::sleep(2s);
    std::printf("gr1 ended work: %s\n", tic().c_str());
}

corio::task<> gr2() {
    // Busy waits for a second, but we don't want to stick around...
    std::printf("gr2 started work: %s\n", tic().c_str());
    co_await corio::sleep(2s);
    std::printf("gr2 Ended work: %s\n", tic().c_str());
}

corio::task<> gr3() {
    std::printf("Let's do some stuff while the coroutines are blocked, %s\n", tic().c_str());
    co_await corio::sleep(1s);
    std::puts("Done!");
}

corio::task<> main_coro() { co_await corio::gather(gr1(), gr2(), gr3()); }

int main() { corio::run(main_coro()); }
