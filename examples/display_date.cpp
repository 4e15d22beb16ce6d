// display_date: "Python asyncio: Great for I/O" (seeds/002), the first example.
// Prints the date every second for five seconds.
//
//   async def display_date():                          | corio::task<> display_date() {
//       loop = asyncio.get_running_loop()              |     auto& loop = corio::get_running_loop();
//       end_time = loop.time() + 5.0                   |     double end_time = loop.time() + 5.0;
//       while True:                                    |     for (;;) {
//           print(datetime.datetime.now())             |         print_now();
//           if (loop.time() + 1.0) >= end_time:        |         if (loop.time() + 1.0 >= end_time)
//               break                                  |             break;
//           await asyncio.sleep(1)                     |         co_await corio::sleep(1s);
//                                                      |     }
//   asyncio.run(display_date())                        | corio::run(display_date());
//
// Usage: display_date [--seconds TOTAL] [--interval S]   (5 and 1 by default, as the article)

#include <corio/corio.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

double total = 5.0;
double interval = 1.0;

// datetime.datetime.now(): 2026-11-23 09:41:07.123456
void print_now() {
    using namespace std::chrono;
    auto now = system_clock::now();
    std::time_t t = system_clock::to_time_t(now);
    auto us = duration_cast<microseconds>(now.time_since_epoch()).count() % 1'000'000;
    std::tm tm{};
    localtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
    std::printf("%s.%06lld\n", buf, static_cast<long long>(us));
}

corio::task<> display_date() {
    auto& loop = corio::get_running_loop();
    double end_time = loop.time() + total;
    for (;;) {
        print_now();
        if (loop.time() + interval >= end_time) break;
        co_await corio::sleep(std::chrono::duration<double>(interval));
    }
}

int main(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--seconds") && i + 1 < argc) total = std::atof(argv[++i]);
        else if (!std::strcmp(argv[i], "--interval") && i + 1 < argc) interval = std::atof(argv[++i]);
        else {
            std::fprintf(stderr, "usage: %s [--seconds TOTAL] [--interval S]\n", argv[0]);
            return 2;
        }
    }
    corio::run(display_date());
}
