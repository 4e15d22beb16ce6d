// fetch_first: "AsyncIO for the Working Python Developer" (seeds/001),
// 2c-fetch-first-ip-address-response-no-warning.py. Ask two services at once, take the first
// answer, cancel the other: no "Task was destroyed but it is pending!" warning.
//
//   async def fetch_ip(service):                                | corio::task<std::string> fetch_ip(service s) {
//       start = time.time()                                     |     auto start = clock::now();
//       print('Fetching IP from {}'.format(service.name))       |     std::printf("Fetching IP from %s\n", ...);
//       json_response = await aiohttp_get_json(service.url)     |     json_object r = co_await aiohttp_get_json(s);
//       ip = json_response[service.ip_attr]                     |     std::string ip = json_get(r, s.ip_attr);
//       return '{} finished with result: {}, took: {:.2f} seconds'.format(...)
//
//   async def main():                                           | corio::task<> main_coro() {
//       futures = [fetch_ip(service) for service in SERVICES]   |     ... corio::create_task(fetch_ip(s)) ...
//       done, pending = await asyncio.wait(                     |     auto [done, pending] = co_await corio::wait(
//           futures, return_when=FIRST_COMPLETED)               |         futures, corio::first_completed);
//       print(done.pop().result())                              |     std::puts(done.front().result().c_str());
//       for future in pending:                                  |     for (auto& f : pending)
//           future.cancel()                                     |         f.cancel();
//                                                               | }
//   asyncio.run(main())                                         | corio::run(main_coro());

#include "ip_services.hpp"

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

const service services[] = {{"ipify", "ip"}, {"ip-api", "query"}};

corio::task<std::string> fetch_ip(service s) {
    const auto start = std::chrono::steady_clock::now();
    std::printf("Fetching IP from %s\n", s.name.c_str());
    json_object json_response = co_await aiohttp_get_json(s);
    std::string ip = json_get(json_response, s.ip_attr);
    co_return s.name + " finished with result: " + ip + ", took: " + took_since(start) + " seconds";
}

corio::task<> main_coro() {
    std::vector<corio::task_handle<std::string>> futures;
    for (const service& s : services) futures.push_back(corio::create_task(fetch_ip(s)));
    auto [done, pending] = co_await corio::wait(futures, corio::first_completed);
    std::puts(done.front().result().c_str());
    for (auto& future : pending) future.cancel();
}

int main() { corio::run(main_coro()); }
