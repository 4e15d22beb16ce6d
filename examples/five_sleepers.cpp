// five_sleepers: the AsyncIO chapter (seeds/003). Five tasks sleep random times; main sleeps two
// seconds, then waits for the rest.
//
//   def random_sleep(counter):                        | corio::task<> random_sleep(int counter) {
//       delay = random.random() * 5                   |     double delay = random_seconds(5);
//       print("{} sleeps for {:.2f} seconds".format(counter, delay))
//       yield from asyncio.sleep(delay)               |     co_await corio::sleep(seconds(delay));
//       print("{} awakens".format(counter))           |     std::printf("%d awakens\n", counter);
//                                                     | }
//   def five_sleepers():                              | corio::task<> five_sleepers() {
//       print("Creating five tasks")                  |     std::puts("Creating five tasks");
//       tasks = [asyncio.async(random_sleep(i))       |     std::vector<corio::task_handle<>> tasks;
//                for i in range(5)]                   |     ... corio::create_task(random_sleep(i)) ...
//       print("Sleeping after starting five tasks")   |     std::puts("Sleeping after starting five tasks");
//       yield from asyncio.sleep(2)                   |     co_await corio::sleep(2s);
//       print("Waking and waiting for five tasks")    |     std::puts("Waking and waiting for five tasks");
//       yield from asyncio.wait(tasks)                |     co_await corio::wait(tasks);
//                                                     | }
//   asyncio.get_event_loop().run_until_complete(five_sleepers())
//   print("Done five tasks")                          | loop.run_until_complete(five_sleepers()); ...
//
// Usage: five_sleepers [--scale S]   (multiplies every delay; 1 by default, as the chapter)

#include <corio/corio.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

double scale = 1.0;
std::mt19937 rng{std::random_device{}()};

std::chrono::duration<double> seconds(double s) { return std::chrono::duration<double>(s * scale); }

corio::task<> random_sleep(int counter) {
    double delay = std::uniform_real_distribution<double>(0.0, 5.0)(rng); // random.random() * 5
    std::printf("%d sleeps for %.2f seconds\n", counter, delay);
    co_await corio::sleep(seconds(delay));
    std::printf("%d awakens\n", counter);
}

corio::task<> five_sleepers() {
    std::puts("Creating five tasks");
    std::vector<corio::task_handle<>> tasks;
    for (int i = 0; i < 5; ++i) tasks.push_back(corio::create_task(random_sleep(i)));
    std::puts("Sleeping after starting five tasks");
    co_await corio::sleep(seconds(2));
    std::puts("Waking and waiting for five tasks");
    co_await corio::wait(tasks);
}

int main(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--scale") && i + 1 < argc) {
            scale = std::atof(argv[++i]);
        } else {
            std::fprintf(stderr, "usage: %s [--scale S]\n", argv[0]);
            return 2;
        }
    }
    corio::event_loop loop;
    loop.run_until_complete(five_sleepers());
    std::puts("Done five tasks");
}
