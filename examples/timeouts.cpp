// timeouts: "AsyncIO for the Working Python Developer" (seeds/001),
// 4a-timeout-with-wait-kwarg.py. Ask the services, but give up after `-t` seconds: the response
// goes out with or without the IP.
//
//   async def fetch_ip(service):                              | corio::task<std::string> fetch_ip(service s) {
//       print('Fetching IP from {}'.format(service.name))     |     std::printf("Fetching IP from %s\n", ...);
//       await asyncio.sleep(randint(1, 3) * 0.1)              |     co_await corio::sleep(random_delay(0.1, 0.3));
//       json_response = await aiohttp_get_json(service.url)   |     json_object r = co_await aiohttp_get_json(s);
//       ip = json_response[service.ip_attr]                   |     std::string ip = json_get(r, s.ip_attr);
//       print('{} finished with result: {}, took: {:.2f} seconds'.format(...))
//       return ip                                             |     co_return ip;
//
//   async def asynchronous(timeout):                          | corio::task<> asynchronous(double timeout) {
//       response = {"message": "Result from asynchronous.",   |     json_object response{...};
//                   "ip": "not available"}                    |
//       futures = [fetch_ip(service) for service in SERVICES] |     ... create_task(fetch_ip(s)) ...
//       done, pending = await asyncio.wait(                   |     auto [done, pending] = co_await corio::wait(
//           futures, timeout=timeout,                         |         futures, corio::first_completed,
//           return_when=FIRST_COMPLETED)                      |         seconds(timeout));
//       for future in pending:                                |     for (auto& f : pending) f.cancel();
//           future.cancel()                                   |
//       for future in done:                                   |     for (auto& f : done)
//           response["ip"] = future.result()                  |         response["ip"] = f.result();
//       print(response)                                       |     print(response);
//
//   parser.add_argument('-t', '--timeout', default=5, type=float)
//   print('Using a {} timeout'.format(args.timeout))
//   asyncio.run(asynchronous(args.timeout))
//
// Usage: timeouts [-t SECONDS]   (5 by default, as the article)

#include "ip_services.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

const service services[] = {{"ipify", "ip"}, {"ip-api", "query"}};

corio::task<std::string> fetch_ip(service s) {
    const auto start = std::chrono::steady_clock::now();
    std::printf("Fetching IP from %s\n", s.name.c_str());
    co_await corio::sleep(random_delay(0.1, 0.3));
    json_object json_response = co_await aiohttp_get_json(s);
    std::string ip = json_get(json_response, s.ip_attr);
    std::printf("%s finished with result: %s, took: %s seconds\n", s.name.c_str(), ip.c_str(),
                took_since(start).c_str());
    co_return ip;
}

// print(dict): {'message': 'Result from asynchronous.', 'ip': 'not available'}
void print(const json_object& r) {
    std::printf("{'message': '%s', 'ip': '%s'}\n", r.at("message").c_str(), r.at("ip").c_str());
}

corio::task<> asynchronous(double timeout) {
    json_object response{{"message", "Result from asynchronous."}, {"ip", "not available"}};
    std::vector<corio::task_handle<std::string>> futures;
    for (const service& s : services) futures.push_back(corio::create_task(fetch_ip(s)));
    auto [done, pending] = co_await corio::wait(futures, corio::first_completed,
                                                std::chrono::duration<double>(timeout));
    for (auto& future : pending) future.cancel();
    for (auto& future : done) response["ip"] = future.result();
    print(response);
}

int main(int argc, char** argv) {
    double timeout = 5;
    for (int i = 1; i < argc; ++i) {
        if ((!std::strcmp(argv[i], "-t") || !std::strcmp(argv[i], "--timeout")) && i + 1 < argc) {
            timeout = std::atof(argv[++i]);
        } else {
            std::fprintf(stderr, "usage: %s [-t SECONDS]\n", argv[0]);
            return 2;
        }
    }
    std::string shown = std::to_string(timeout); // Python's repr of a float: 5.0, 0.01
    shown.erase(shown.find_last_not_of('0') + 1);
    if (shown.back() == '.') shown += '0';
    std::printf("Using a %s timeout\n", shown.c_str());
    corio::run(asynchronous(timeout));
}
