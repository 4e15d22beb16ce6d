// Name resolution: getaddrinfo off the loop thread (numeric hosts answered at once), its errors,
// its cancellation; getservbyname.
#include <corio/resolver.hpp>

#include <corio/runners.hpp>
#include <corio/sleep.hpp>
#include <corio/task.hpp>

#include "support/helpers.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <netdb.h>

using namespace std::chrono_literals;
using corio::task;

namespace {

bool contains(const std::vector<corio::address>& v, const std::string& host, int port) {
    return std::any_of(v.begin(), v.end(),
                       [&](const corio::address& a) { return a.host() == host && a.port() == port; });
}

} // namespace

TEST_CASE("getaddrinfo: a numeric IPv4 host is answered without a thread") {
    corio::run([]() -> task<> {
        const auto main_thread = std::this_thread::get_id();
        // The fast path completes inline: no suspension, so no other task runs in between.
        bool other_ran = false;
        auto other = corio_test::spawn([&]() -> task<> {
            other_ran = true;
            co_return;
        });
        auto v = co_await corio::getaddrinfo("127.0.0.1", 8080);
        CHECK_FALSE(other_ran);
        REQUIRE(v.size() == 1);
        CHECK(v[0].family() == AF_INET);
        CHECK(v[0].to_string() == "127.0.0.1:8080");
        CHECK(std::this_thread::get_id() == main_thread);
        co_await other;
    });
}

TEST_CASE("getaddrinfo: numeric IPv6, and a family that does not match goes to the resolver") {
    corio::run([]() -> task<> {
        auto v6 = co_await corio::getaddrinfo("::1", 53);
        REQUIRE(v6.size() == 1);
        CHECK(v6[0].family() == AF_INET6);
        CHECK(v6[0].to_string() == "[::1]:53");

        corio::addrinfo_options only_v4;
        only_v4.family = AF_INET;
        bool failed = false;
        try {
            (void)co_await corio::getaddrinfo("::1", 53, only_v4);
        } catch (const corio::gai_error&) {
            failed = true; // the real getaddrinfo: an IPv6 literal has no IPv4 address
        }
        CHECK(failed);
    });
}

TEST_CASE("getaddrinfo: service names and ports") {
    corio::run([]() -> task<> {
        auto v = co_await corio::getaddrinfo("127.0.0.1", "http");
        REQUIRE(!v.empty());
        CHECK(v[0].port() == 80);
        auto w = co_await corio::getaddrinfo("127.0.0.1", "8081");
        REQUIRE(w.size() == 1);
        CHECK(w[0].port() == 8081);
    });
}

TEST_CASE("getaddrinfo: localhost resolves to a loopback address, off the loop thread") {
    corio::run([]() -> task<> {
        // While the lookup runs on a pool thread the loop runs other tasks.
        int ticks = 0;
        auto ticker = corio_test::spawn([&]() -> task<> {
            for (;;) {
                ++ticks;
                co_await corio::sleep(0s);
            }
        });
        corio::addrinfo_options stream;
        stream.type = SOCK_STREAM;
        auto v = co_await corio::getaddrinfo("localhost", 80, stream);
        ticker.cancel();
        co_await ticker.wait_done();
        REQUIRE(!v.empty());
        CHECK((contains(v, "127.0.0.1", 80) || contains(v, "::1", 80)));
        for (const auto& a : v) CHECK((a.family() == AF_INET || a.family() == AF_INET6));
        CHECK(ticks >= 1);
        // No duplicates (one entry per socket type would repeat each address).
        auto all = co_await corio::getaddrinfo("localhost", 80);
        for (std::size_t i = 0; i < all.size(); ++i)
            for (std::size_t j = i + 1; j < all.size(); ++j) CHECK_FALSE(all[i] == all[j]);
    });
}

TEST_CASE("getaddrinfo: an empty host is None: wildcard with AI_PASSIVE, loopback without") {
    corio::run([]() -> task<> {
        corio::addrinfo_options passive;
        passive.type = SOCK_STREAM;
        passive.flags = AI_PASSIVE;
        auto any = co_await corio::getaddrinfo("", 0, passive);
        CHECK(contains(any, "0.0.0.0", 0));
        corio::addrinfo_options active;
        active.type = SOCK_STREAM;
        active.family = AF_INET;
        auto lo = co_await corio::getaddrinfo("", 7, active);
        CHECK(contains(lo, "127.0.0.1", 7));
    });
}

TEST_CASE("getaddrinfo: an unknown host throws gai_error (a std::system_error)") {
    corio::run([]() -> task<> {
        bool caught = false;
        try {
            (void)co_await corio::getaddrinfo("nonexistent.invalid", 80);
        } catch (const corio::gai_error& e) {
            caught = true;
            CHECK(&e.code().category() == &corio::gai_category());
            CHECK(e.code().value() != 0);
            CHECK(std::string(e.what()).find("nonexistent.invalid") != std::string::npos);
        }
        CHECK(caught);
        // As a std::system_error, like Python's gaierror is an OSError.
        bool as_system_error = false;
        try {
            (void)co_await corio::getaddrinfo("nonexistent.invalid", 80);
        } catch (const std::system_error&) {
            as_system_error = true;
        }
        CHECK(as_system_error);
        // An unknown service.
        bool bad_service = false;
        try {
            (void)co_await corio::getaddrinfo("127.0.0.1", "no-such-service-here");
        } catch (const corio::gai_error&) {
            bad_service = true;
        }
        CHECK(bad_service);
    });
}

TEST_CASE("getaddrinfo: cancelling the awaiting task, before and while the lookup runs") {
    corio::run([]() -> task<> {
        // Cancelled before its first step: nothing is submitted.
        auto early = corio::create_task(corio::getaddrinfo("localhost", 80));
        early.cancel();
        co_await early.wait_done();
        CHECK(early.cancelled());

        // Cancelled while the pool thread resolves: cancelled_error at once; the lookup's result
        // is dropped when it comes back (TSan and ASan check that nothing races or leaks).
        for (int i = 0; i < 20; ++i) {
            auto t = corio::create_task(corio::getaddrinfo(i % 2 ? "localhost" : "nonexistent.invalid", 80));
            co_await corio::sleep(0s); // submitted now
            CHECK(t.cancel());
            co_await t.wait_done();
            CHECK(t.cancelled());
        }
        // The loop still resolves afterwards.
        auto v = co_await corio::getaddrinfo("localhost", 80);
        CHECK(!v.empty());
    });
}

TEST_CASE("getservbyname") {
    CHECK(corio::getservbyname("http") == 80);
    CHECK(corio::getservbyname("https", "tcp") == 443);
    CHECK(corio::getservbyname("domain", "udp") == 53);
    CHECK_THROWS_AS(corio::getservbyname("no-such-service-here"), std::system_error);
    try {
        corio::getservbyname("no-such-service-here");
    } catch (const std::system_error& e) {
        CHECK(std::string(e.what()).find("service/proto not found") != std::string::npos);
    }
    // Safe from several threads at once.
    std::vector<std::thread> ts;
    std::vector<int> results(8);
    for (int i = 0; i < 8; ++i)
        ts.emplace_back([&results, i] {
            for (int k = 0; k < 50; ++k) results[static_cast<std::size_t>(i)] = corio::getservbyname(i % 2 ? "ssh" : "http");
        });
    for (auto& t : ts) t.join();
    for (int i = 0; i < 8; ++i) CHECK(results[static_cast<std::size_t>(i)] == (i % 2 ? 22 : 80));
}
