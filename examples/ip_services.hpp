#pragma once
// A local stand-in for the IP-address web services of "AsyncIO for the Working Python Developer"
// (seeds/001), so the fetch examples run anywhere: each "request" sleeps a random time, then
// answers with a JSON-like map, as aiohttp's response.json() would. The real HTTP fetches come
// with the networking examples (fetch_http).
//
//   Service = namedtuple('Service', ('name', 'url', 'ip_attr'))
//   SERVICES = (Service('ipify', 'https://api.ipify.org?format=json', 'ip'),
//               Service('ip-api', 'http://ip-api.com/json', 'query'))

#include <corio/corio.hpp>

#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <stdexcept>
#include <string>

struct service {
    std::string name;
    std::string ip_attr; // the key of the JSON answer that holds the address
    bool reachable = true;
};

using json_object = std::map<std::string, std::string>;

inline std::mt19937& rng() {
    static std::mt19937 r{std::random_device{}()};
    return r;
}

/// A delay drawn from [lo, hi] seconds.
inline std::chrono::duration<double> random_delay(double lo, double hi) {
    return std::chrono::duration<double>(std::uniform_real_distribution<double>(lo, hi)(rng()));
}

/// json_response[key]: a missing key throws, as Python's KeyError does.
inline const std::string& json_get(const json_object& json, const std::string& key) {
    auto it = json.find(key);
    if (it == json.end()) throw std::out_of_range("KeyError: '" + key + "'");
    return it->second;
}

/// "took: 0.12 seconds" since `start`.
inline std::string took_since(std::chrono::steady_clock::time_point start) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f",
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    return buf;
}

/// aiohttp_get_json(url): answers {"ip": ..., "query": ...} after 0.05-0.3 s; an unreachable
/// service fails like a connection error would.
inline corio::task<json_object> aiohttp_get_json(service s) {
    co_await corio::sleep(random_delay(0.05, 0.3));
    if (!s.reachable) throw std::runtime_error("Cannot connect to host " + s.name);
    co_return json_object{{"ip", "203.0.113.7"}, {"query", "203.0.113.7"}};
}
