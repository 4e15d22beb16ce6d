// determinism: "AsyncIO for the Working Python Developer" (seeds/001), 1c-determinism-sync-async.py.
// The same nine tasks, run one after another and then concurrently: the concurrent ones finish
// in a random order, because each sleeps a random 0-2 ms.
//
//   def task(pid):                                    | void task(int pid) {
//       sleep(random.randint(0, 2) * 0.001)           |     std::this_thread::sleep_for(random_ms());
//       print('Task %s done' % pid)                   |     std::printf("Task %d done\n", pid);
//   async def task_coro(pid):                         | corio::task<> task_coro(int pid) {
//       await asyncio.sleep(random.randint(0, 2) * 0.001)  co_await corio::sleep(random_ms());
//       print('Task %s done' % pid)                   |     std::printf("Task %d done\n", pid);
//   def synchronous():                                | void synchronous() {
//       for i in range(1, 10):                        |     for (int i = 1; i < 10; ++i)
//           task(i)                                   |         task(i);
//   async def asynchronous():                         | corio::task<> asynchronous() {
//       tasks = [task_coro(i) for i in range(1, 10)]  |     std::vector<corio::task<>> tasks; ...
//       await asyncio.gather(*tasks)                  |     co_await corio::gather(std::move(tasks));
//
//   print('Synchronous:'); synchronous()              | std::puts("Synchronous:"); synchronous();
//   print('Asynchronous:'); asyncio.run(asynchronous())| std::puts("Asynchronous:"); corio::run(asynchronous());

#include <corio/corio.hpp>

#include <chrono>
#include <cstdio>
#include <random>
#include <thread>
#include <utility>
#include <vector>

std::mt19937 rng{std::random_device{}()};

// random.randint(0, 2) * 0.001 seconds
std::chrono::milliseconds random_ms() {
    return std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 2)(rng));
}

void task(int pid) { // Synchronous non-deterministic task.
    std::this_thread::sleep_for(random_ms());
    std::printf("Task %d done\n", pid);
}

corio::task<> task_coro(int pid) { // Coroutine non-deterministic task
    co_await corio::sleep(random_ms());
    std::printf("Task %d done\n", pid);
}

void synchronous() {
    for (int i = 1; i < 10; ++i) task(i);
}

corio::task<> asynchronous() {
    std::vector<corio::task<>> tasks;
    for (int i = 1; i < 10; ++i) tasks.push_back(task_coro(i));
    co_await corio::gather(std::move(tasks));
}

int main() {
    std::puts("Synchronous:");
    synchronous();
    std::puts("Asynchronous:");
    corio::run(asynchronous());
}
