// fetch_exceptions: "AsyncIO for the Working Python Developer" (seeds/001),
// 3b-fetch-ip-addresses-future-exceptions.py. One service is down (handled inside fetch_ip), one
// answers without the expected attribute (an unexpected error, caught while processing the
// futures as they complete), one works.
//
//   SERVICES = (Service('ipify', ..., 'ip'),                    | const service services[] = {
//               Service('ip-api', ..., 'this-is-not-an-attr'),  |     {"ipify", "ip"},
//               Service('borken', ..., 'ip'))                   |     {"ip-api", "this-is-not-an-attr"},
//                                                               |     {"borken", "ip", false}};
//   async def fetch_ip(service):                                | corio::task<std::string> fetch_ip(service s) {
//       print('Fetching IP from {}'.format(service.name))       |
//       try:                                                    |     try {
//           json_response = await aiohttp_get_json(service.url) |         r = co_await aiohttp_get_json(s);
//       except:                                                 |     } catch (const std::exception&) {
//           return '{} is unresponsive'.format(service.name)    |         co_return s.name + " is unresponsive";
//       ip = json_response[service.ip_attr]                     |     ip = json_get(r, s.ip_attr);  // KeyError
//       return '{} finished with result: ...'                   |     co_return ...;
//
//   async def main():                                           | corio::task<> main_coro() {
//       futures = [fetch_ip(service) for service in SERVICES]   |     ... create_task(fetch_ip(s)) ...
//       for future in asyncio.as_completed(futures):            |     auto it = corio::as_completed(futures);
//           try:                                                |     while (auto future = co_await it.next()) {
//               print(await future)                             |         try { std::puts(future->result()...); }
//           except:                                             |         catch (const std::exception& e) {
//               print("Unexpected error: {}".format(traceback.format_exc()))
//                                                               |             std::printf("Unexpected error: ...");

#include "ip_services.hpp"

#include <chrono>
#include <cstdio>
#include <exception>
#include <optional>
#include <string>
#include <vector>

const service services[] = {{"ipify", "ip"}, {"ip-api", "this-is-not-an-attr"}, {"borken", "ip", false}};

corio::task<std::string> fetch_ip(service s) {
    const auto start = std::chrono::steady_clock::now();
    std::printf("Fetching IP from %s\n", s.name.c_str());
    std::optional<json_object> json_response;
    try {
        json_response = co_await aiohttp_get_json(s);
    } catch (const std::exception&) {
        co_return s.name + " is unresponsive";
    }
    std::string ip = json_get(*json_response, s.ip_attr); // throws like a KeyError
    co_return s.name + " finished with result: " + ip + ", took: " + took_since(start) + " seconds";
}

corio::task<> main_coro() {
    std::vector<corio::task_handle<std::string>> futures;
    for (const service& s : services) futures.push_back(corio::create_task(fetch_ip(s)));
    auto it = corio::as_completed(futures);
    while (auto future = co_await it.next()) {
        try {
            std::puts(future->result().c_str());
        } catch (const std::exception& e) {
            std::printf("Unexpected error: %s\n", e.what());
        }
    }
}

int main() { corio::run(main_coro()); }
