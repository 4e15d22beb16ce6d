// Datagram endpoints (create_datagram_endpoint): UDP over IPv4/IPv6 and Unix datagram sockets,
// on loopback with port 0 only. Semantics follow CPython's _SelectorDatagramTransport.
#include <corio/datagram.hpp>

#include <corio/runners.hpp>
#include <corio/sleep.hpp>
#include <corio/task.hpp>

#include "support/helpers.hpp"

#include <doctest/doctest.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace std::chrono_literals;
using corio::address;
using corio::task;

namespace {

/// Records every callback; echoes datagrams back if `echo`.
struct recorder : corio::datagram_protocol {
    corio::datagram_transport* transport = nullptr;
    std::vector<std::string> data;
    std::vector<address> from;
    std::vector<std::exception_ptr> errors;
    int made = 0;
    int lost = 0;
    int paused = 0;
    int resumed = 0;
    std::exception_ptr lost_exc;
    bool echo = false;

    void connection_made(corio::datagram_transport& t) override {
        transport = &t;
        ++made;
    }
    void datagram_received(std::string_view d, const address& a) override {
        data.emplace_back(d);
        from.push_back(a);
        if (echo) transport->sendto(d, a);
    }
    void error_received(std::exception_ptr e) override { errors.push_back(e); }
    void connection_lost(std::exception_ptr e) override {
        ++lost;
        lost_exc = e;
    }
    void pause_writing() override { ++paused; }
    void resume_writing() override { ++resumed; }
};

struct echo_server : recorder {
    echo_server() { echo = true; }
};

template <class P>
using endpoint = std::pair<std::shared_ptr<corio::datagram_transport>, std::shared_ptr<P>>;

template <class P = recorder>
task<endpoint<P>> open(std::optional<address> local, std::optional<address> remote = std::nullopt,
                       corio::datagram_options opts = {}) {
    auto factory = [] { return std::make_shared<P>(); };
    co_return co_await corio::create_datagram_endpoint(factory, local, remote, opts);
}

address sockname(const corio::datagram_transport& t) {
    auto a = t.extra_info<address>("sockname");
    REQUIRE(a.has_value());
    return *a;
}

bool ipv6_loopback_available() {
    int fd = ::socket(AF_INET6, SOCK_DGRAM, 0);
    if (fd < 0) return false;
    address a{"::1", 0};
    const bool ok = ::bind(fd, a.data(), a.size()) == 0;
    ::close(fd);
    return ok;
}

/// A UDP port nobody listens on (bound, then released).
int closed_udp_port() {
    int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    REQUIRE(fd >= 0);
    address a{"127.0.0.1", 0};
    REQUIRE(::bind(fd, a.data(), a.size()) == 0);
    socklen_t len = address::capacity();
    REQUIRE(::getsockname(fd, a.data(), &len) == 0);
    a.resize(len);
    ::close(fd);
    return a.port();
}

} // namespace

TEST_CASE("UDP echo: a connected client and a server, round trip") {
    const int fds_before = corio_test::open_fd_count();
    corio::run([]() -> task<> {
        auto [st, sp] = co_await open<echo_server>(address{"127.0.0.1", 0});
        const address server = sockname(*st);
        CHECK(server.host() == "127.0.0.1");
        CHECK(server.port() != 0);
        CHECK(sp->made == 1);
        CHECK(sp->transport == st.get());
        CHECK(!st->extra_info<address>("peername")); // not connected
        REQUIRE(st->extra_info<int>("socket"));
        CHECK(*st->extra_info<int>("socket") >= 0);

        auto [ct, cp] = co_await open(std::nullopt, server);
        CHECK(ct->extra_info<address>("peername") == server);
        ct->sendto("hello");
        ct->sendto("world", server); // the connected peer may be named too
        CHECK(co_await corio_test::eventually([&] { return cp->data.size() == 2; }));
        CHECK(cp->data == std::vector<std::string>{"hello", "world"});
        CHECK(cp->from[0] == server);
        CHECK(sp->from[0] == sockname(*ct));
        CHECK(ct->get_write_buffer_size() == 0);
        CHECK(cp->errors.empty());

        ct->close();
        st->close();
        CHECK(co_await corio_test::eventually([&] { return cp->lost == 1 && sp->lost == 1; }));
    });
    CHECK(corio_test::open_fd_count() == fds_before);
}

TEST_CASE("UDP: an unconnected client names the destination; loop.create_datagram_endpoint") {
    corio::run([]() -> task<> {
        auto& loop = corio::get_running_loop();
        auto factory = [] { return std::make_shared<echo_server>(); };
        auto [st, sp] = co_await loop.create_datagram_endpoint(factory, address{"127.0.0.1", 0});
        const address server = sockname(*st);
        auto [ct, cp] = co_await open(address{"127.0.0.1", 0});
        ct->sendto("ping", server);
        CHECK(co_await corio_test::eventually([&] { return cp->data.size() == 1; }));
        CHECK(cp->data[0] == "ping");
        CHECK(cp->from[0] == server);
        CHECK_THROWS_AS(ct->sendto("no address"), std::logic_error); // not connected
        ct->close();
        st->close();
        co_await corio_test::settle();
    });
}

TEST_CASE("UDP: 10,000 datagrams arrive in order (paced in batches: UDP drops on overflow)") {
    corio::run([]() -> task<> {
        auto [st, sp] = co_await open(address{"127.0.0.1", 0});
        auto [ct, cp] = co_await open(std::nullopt, sockname(*st));
        constexpr int total = 10000;
        constexpr int batch = 50;
        for (int i = 0; i < total; i += batch) {
            for (int j = i; j < i + batch; ++j) ct->sendto(std::to_string(j));
            REQUIRE(co_await corio_test::eventually(
                [&] { return sp->data.size() == static_cast<std::size_t>(i + batch); }));
        }
        bool in_order = true;
        for (int i = 0; i < total; ++i) in_order = in_order && sp->data[static_cast<std::size_t>(i)] == std::to_string(i);
        CHECK(in_order);
        CHECK(sp->errors.empty());
        ct->close();
        st->close();
        co_await corio_test::settle();
    });
}

TEST_CASE("ECONNREFUSED from a closed port goes to error_received; the endpoint stays open") {
    corio::run([]() -> task<> {
        const int port = closed_udp_port();
        auto [ct, cp] = co_await open(std::nullopt, address{"127.0.0.1", port});
        ct->sendto("anyone?");
        // The ICMP "port unreachable" comes back as ECONNREFUSED, on a receive (the socket
        // turns readable with an error) or on the next send.
        CHECK(co_await corio_test::eventually([&] {
            if (cp->errors.empty()) ct->sendto("anyone?");
            return !cp->errors.empty();
        }));
        REQUIRE(!cp->errors.empty());
        CHECK(corio_test::error_code_of(cp->errors[0]) == ECONNREFUSED);
        CHECK(!ct->is_closing());
        CHECK(cp->lost == 0);

        // Still usable: talk to a real server through a second endpoint of the same kind.
        auto [st, sp] = co_await open<echo_server>(address{"127.0.0.1", 0});
        auto [c2, p2] = co_await open(std::nullopt, sockname(*st));
        c2->sendto("x");
        CHECK(co_await corio_test::eventually([&] { return p2->data.size() == 1; }));
        ct->close();
        c2->close();
        st->close();
        CHECK(co_await corio_test::eventually([&] { return cp->lost == 1; }));
        CHECK(cp->lost_exc == nullptr);
    });
}

TEST_CASE("UDP: the largest datagram (65507 bytes) and the empty one") {
    corio::run([]() -> task<> {
        auto [st, sp] = co_await open<echo_server>(address{"127.0.0.1", 0});
        auto [ct, cp] = co_await open(std::nullopt, sockname(*st));
        std::string big(65507, '\0');
        for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7 + 3);
        ct->sendto(big);
        CHECK(co_await corio_test::eventually([&] { return cp->data.size() == 1; }));
        REQUIRE(cp->data.size() == 1);
        CHECK(cp->data[0] == big);

        ct->sendto("");
        CHECK(co_await corio_test::eventually([&] { return cp->data.size() == 2; }));
        REQUIRE(cp->data.size() == 2);
        CHECK(cp->data[1].empty());
        CHECK(sp->data.size() == 2);

        // One byte more does not fit in a UDP/IPv4 datagram: EMSGSIZE, endpoint still open.
        ct->sendto(std::string(65508, 'x'));
        REQUIRE(cp->errors.size() == 1);
        CHECK(corio_test::error_code_of(cp->errors[0]) == EMSGSIZE);
        CHECK(!ct->is_closing());
        ct->sendto("after");
        CHECK(co_await corio_test::eventually([&] { return cp->data.size() == 3; }));
        ct->close();
        st->close();
        co_await corio_test::settle();
    });
}

TEST_CASE("close: connection_lost(nullptr) once, on a later iteration; sendto after close is dropped") {
    const int fds_before = corio_test::open_fd_count();
    corio::run([]() -> task<> {
        auto [st, sp] = co_await open(address{"127.0.0.1", 0});
        auto [ct, cp] = co_await open(std::nullopt, sockname(*st));
        const int fd = *ct->extra_info<int>("socket");
        ct->close();
        CHECK(ct->is_closing());
        CHECK(cp->lost == 0); // never inside close()
        ct->close();          // idempotent
        ct->abort();          // already closing: nothing more
        ct->sendto("dropped");
        ct->sendto("dropped", sockname(*st));
        CHECK(ct->get_write_buffer_size() == 0);
        co_await corio::sleep(0s);
        CHECK(cp->lost == 1);
        CHECK(cp->lost_exc == nullptr);
        CHECK(cp->errors.empty());
        CHECK(!ct->extra_info<int>("socket")); // the socket is closed
        CHECK(::fcntl(fd, F_GETFD) == -1);
        co_await corio_test::settle();
        CHECK(cp->lost == 1);
        ct->sendto("still dropped"); // after connection_lost too: no throw, no callback
        co_await corio::sleep(10ms);
        CHECK(sp->data.empty());
        CHECK(cp->errors.empty());
        st->abort();
        co_await corio::sleep(0s);
        CHECK(sp->lost == 1);
    });
    CHECK(corio_test::open_fd_count() == fds_before);
}

TEST_CASE("the transport keeps itself alive while open, and lets go of its protocol after connection_lost") {
    corio::run([]() -> task<> {
        std::weak_ptr<recorder> wp;
        std::weak_ptr<corio::datagram_transport> wt;
        address server;
        {
            auto [st, sp] = co_await open<echo_server>(address{"127.0.0.1", 0});
            server = sockname(*st);
            wp = sp;
            wt = st;
        } // the caller drops both: the loop still holds the endpoint
        CHECK(!wt.expired());
        CHECK(!wp.expired());
        auto [ct, cp] = co_await open(std::nullopt, server);
        ct->sendto("still there?");
        CHECK(co_await corio_test::eventually([&] { return cp->data.size() == 1; }));
        wt.lock()->close();
        CHECK(co_await corio_test::eventually([&] { return wt.expired(); }));
        CHECK(wp.expired());
        ct->close();
        co_await corio_test::settle();
    });
}

TEST_CASE("an endpoint kept past its loop is detached: its calls never touch the loop, no fd leaks") {
    const int fds_before = corio_test::open_fd_count();
    std::shared_ptr<corio::datagram_transport> kept;
    std::shared_ptr<recorder> kept_protocol;
    corio::run([&]() -> task<> {
        auto [t, p] = co_await open(address{"127.0.0.1", 0});
        kept = t;
        kept_protocol = p;
    }); // the loop closes (and is destroyed) with the endpoint still open
    REQUIRE(kept);
    CHECK(kept->is_closing());
    CHECK(kept_protocol->lost == 0); // dropped without callbacks, as asyncio drops it
    kept->sendto("dropped", address{"127.0.0.1", 9});
    kept->close();
    kept->abort();
    CHECK(kept->get_write_buffer_size() == 0);
    CHECK(corio_test::open_fd_count() == fds_before); // the socket closed with the loop
    kept.reset();
    CHECK(kept_protocol->lost == 0);
}

TEST_CASE("IPv6 ::1 round trip") {
    if (!ipv6_loopback_available()) {
        MESSAGE("no IPv6 loopback here: skipped");
        return;
    }
    corio::run([]() -> task<> {
        auto [st, sp] = co_await open<echo_server>(address{"::1", 0});
        const address server = sockname(*st);
        CHECK(server.family() == AF_INET6);
        CHECK(server.host() == "::1");
        auto [ct, cp] = co_await open(address{"::1", 0});
        ct->sendto("six", server);
        CHECK(co_await corio_test::eventually([&] { return cp->data.size() == 1; }));
        CHECK(cp->data[0] == "six");
        CHECK(cp->from[0].to_string() == server.to_string());
        ct->close();
        st->close();
        co_await corio_test::settle();
    });
}

TEST_CASE("Unix datagram sockets: round trip between two bound paths") {
    corio_test::temp_dir dir;
    const int fds_before = corio_test::open_fd_count();
    corio::run([&]() -> task<> {
        const address spath = address::unix_path(dir.file("server"));
        const address cpath = address::unix_path(dir.file("client"));
        auto [st, sp] = co_await open<echo_server>(spath);
        CHECK(sockname(*st).host() == dir.file("server"));
        auto [ct, cp] = co_await open(cpath, spath);
        ct->sendto("over unix");
        CHECK(co_await corio_test::eventually([&] { return cp->data.size() == 1; }));
        CHECK(cp->data[0] == "over unix");
        CHECK(sp->from[0].host() == dir.file("client"));
        CHECK(cp->from[0].host() == dir.file("server"));
        ct->close();
        st->close();
        co_await corio_test::settle();
    });
    CHECK(corio_test::open_fd_count() == fds_before);
    // As asyncio: the socket files stay; a new endpoint on the same path replaces the stale one.
    struct stat stbuf{};
    CHECK(::stat(dir.file("server").c_str(), &stbuf) == 0);
    corio::run([&]() -> task<> {
        auto [st, sp] = co_await open(address::unix_path(dir.file("server")));
        CHECK(!st->is_closing());
        st->close();
        co_await corio_test::settle();
    });
}

TEST_CASE("Unix datagram: 10,000 datagrams unpaced; EAGAIN queues, pause/resume_writing, all in order") {
    corio_test::temp_dir dir;
    corio::run([&]() -> task<> {
        const address spath = address::unix_path(dir.file("server"));
        auto [st, sp] = co_await open(spath);
        auto [ct, cp] = co_await open(std::nullopt, spath);
        constexpr int total = 10000;
        for (int i = 0; i < total; ++i) ct->sendto(std::to_string(i)); // the receiver's queue fills
        CHECK(ct->get_write_buffer_size() > 0);
        CHECK(cp->paused == 1);
        CHECK(co_await corio_test::eventually([&] { return sp->data.size() == total; }));
        REQUIRE(sp->data.size() == total);
        bool in_order = true;
        for (int i = 0; i < total; ++i) in_order = in_order && sp->data[static_cast<std::size_t>(i)] == std::to_string(i);
        CHECK(in_order);
        CHECK(cp->resumed == 1);
        CHECK(ct->get_write_buffer_size() == 0);
        CHECK(cp->errors.empty());
        ct->close();
        st->close();
        co_await corio_test::settle();
    });
}

TEST_CASE("close() with datagrams queued sends them first; abort() drops them") {
    corio_test::temp_dir dir;
    corio::run([&]() -> task<> {
        // A plain socket that reads nothing until told to: the sender's queue fills up.
        const address sink = address::unix_path(dir.file("sink"));
        int raw = ::socket(AF_UNIX, SOCK_DGRAM, 0);
        REQUIRE(raw >= 0);
        REQUIRE(::bind(raw, sink.data(), sink.size()) == 0);
        REQUIRE(::fcntl(raw, F_SETFL, O_NONBLOCK) == 0);

        auto [ct, cp] = co_await open(std::nullopt, sink);
        auto* dt = dynamic_cast<corio::detail::datagram_socket_transport*>(ct.get());
        REQUIRE(dt != nullptr);
        CHECK(dt->get_write_buffer_limits() == std::pair<std::size_t, std::size_t>(16384, 65536));
        dt->set_write_buffer_limits(1000);
        CHECK(dt->get_write_buffer_limits() == std::pair<std::size_t, std::size_t>(250, 1000));
        CHECK_THROWS_AS(dt->set_write_buffer_limits(10, 20), std::invalid_argument);
        int sent = 0;
        while (ct->get_write_buffer_size() == 0 && sent < 100000) ct->sendto(std::to_string(sent++));
        REQUIRE(ct->get_write_buffer_size() > 0); // the sink's queue is full
        for (int i = 0; i < 200; ++i) ct->sendto(std::to_string(sent++));
        CHECK(cp->paused == 1);
        ct->close(); // queued datagrams still go out
        CHECK(ct->is_closing());

        std::vector<std::string> got;
        char buf[64];
        for (;;) {
            const bool all_sent = cp->lost == 1; // connection_lost comes after the last send
            ssize_t n = ::recv(raw, buf, sizeof buf, 0);
            if (n >= 0) got.emplace_back(buf, static_cast<std::size_t>(n));
            else if (all_sent) break;
            else co_await corio::sleep(1ms); // let the transport flush
        }
        CHECK(static_cast<int>(got.size()) == sent);
        CHECK(cp->errors.empty());
        CHECK(cp->lost == 1);
        CHECK(cp->resumed == 1);
        CHECK(got.back() == std::to_string(sent - 1));

        // abort: the queue is dropped.
        auto [at, ap] = co_await open(std::nullopt, sink);
        int asent = 0;
        while (at->get_write_buffer_size() == 0 && asent < 100000) at->sendto(std::to_string(asent++));
        REQUIRE(at->get_write_buffer_size() > 0);
        at->abort();
        CHECK(at->get_write_buffer_size() == 0);
        co_await corio::sleep(0s);
        CHECK(ap->lost == 1);
        ::close(raw);
    });
}

TEST_CASE("Unix datagram larger than the 64 KiB buffer arrives truncated (as asyncio)") {
    corio_test::temp_dir dir;
    corio::run([&]() -> task<> {
        const address spath = address::unix_path(dir.file("big"));
        auto [st, sp] = co_await open(spath);
        auto [ct, cp] = co_await open(std::nullopt, spath);
        const int fd = *ct->extra_info<int>("socket");
        int sndbuf = 1 << 20;
        ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
        std::string big(70000, 'b');
        big[65535] = 'L';
        ct->sendto(big);
        if (!cp->errors.empty()) { // a system that caps Unix datagrams lower: nothing to test
            MESSAGE("70000-byte Unix datagram refused here: " << corio_test::error_code_of(cp->errors[0]));
        } else {
            CHECK(co_await corio_test::eventually([&] { return sp->data.size() == 1; }));
            REQUIRE(sp->data.size() == 1);
            CHECK(sp->data[0].size() == 65536);
            CHECK(sp->data[0].back() == 'L');
        }
        ct->close();
        st->close();
        co_await corio_test::settle();
    });
}

TEST_CASE("an exception in datagram_received reaches the exception handler; the endpoint keeps working") {
    struct throwing : recorder {
        void datagram_received(std::string_view d, const address& a) override {
            recorder::datagram_received(d, a);
            if (d == "boom") throw std::runtime_error("boom");
        }
        void error_received(std::exception_ptr e) override {
            recorder::error_received(e);
            throw std::runtime_error("error_received failed");
        }
    };
    corio_test::report_recorder rec;
    corio::run([&]() -> task<> {
        rec.attach(corio::get_running_loop());
        auto [st, sp] = co_await open<throwing>(address{"127.0.0.1", 0});
        auto [ct, cp] = co_await open(std::nullopt, sockname(*st));
        ct->sendto("one");
        ct->sendto("boom");
        ct->sendto("three");
        CHECK(co_await corio_test::eventually([&] { return sp->data.size() == 3; }));
        CHECK(sp->data == std::vector<std::string>{"one", "boom", "three"});
        CHECK(!st->is_closing());
        REQUIRE(rec.reports.size() == 1);
        CHECK(rec.reports[0].message.find("datagram_received") != std::string::npos);
        CHECK_THROWS_WITH_AS(std::rethrow_exception(rec.reports[0].exception), "boom",
                             std::runtime_error);
        ct->sendto("four");
        CHECK(co_await corio_test::eventually([&] { return sp->data.size() == 4; }));

        // error_received throwing from a receive error: reported too, endpoint open.
        auto [et, ep] = co_await open<throwing>(std::nullopt, address{"127.0.0.1", closed_udp_port()});
        et->sendto(std::string_view("x"));
        CHECK(co_await corio_test::eventually([&] { return !ep->errors.empty(); }));
        CHECK(co_await corio_test::eventually([&] { return rec.reports.size() == 2; }));
        if (rec.reports.size() == 2)
            CHECK(rec.reports[1].message.find("error_received") != std::string::npos);
        CHECK(!et->is_closing());
        et->close();
        ct->close();
        st->close();
        co_await corio_test::settle();
    });
}

TEST_CASE("argument errors: connected peer mismatch, families, bind failures; nothing leaks") {
    const int fds_before = corio_test::open_fd_count();
    corio::run([]() -> task<> {
        auto [st, sp] = co_await open(address{"127.0.0.1", 0});
        const address server = sockname(*st);
        auto [ct, cp] = co_await open(std::nullopt, server);
        CHECK_THROWS_AS(ct->sendto("x", address{"127.0.0.1", server.port() == 9 ? 10 : 9}),
                        std::invalid_argument);

        // Families that disagree, or none at all.
        bool threw = false;
        try {
            co_await open(address{"127.0.0.1", 0}, address{"::1", 53});
        } catch (const std::invalid_argument&) {
            threw = true;
        }
        CHECK(threw);
        threw = false;
        try {
            co_await open(std::nullopt, std::nullopt);
        } catch (const std::invalid_argument&) {
            threw = true;
        }
        CHECK(threw);

        // An address in use: EADDRINUSE, socket closed.
        int code = 0;
        try {
            co_await open(server);
        } catch (const std::system_error& e) {
            code = e.code().value();
        }
        CHECK(code == EADDRINUSE);

        // reuse_port: two endpoints share the port.
        auto [r1, p1] = co_await open(address{"127.0.0.1", 0}, std::nullopt, {.reuse_port = true});
        auto [r2, p2] = co_await open(sockname(*r1), std::nullopt, {.reuse_port = true});
        CHECK(sockname(*r2) == sockname(*r1));

        // asyncio's remote_addr only, spelled with {} for "no local address".
        auto factory = [] { return std::make_shared<recorder>(); };
        auto [kt, kp] = co_await corio::create_datagram_endpoint(factory, {}, server);
        CHECK(kt->extra_info<address>("peername") == server);

        // A family but no address: an unbound socket that can still send.
        auto [ut, up] = co_await open(std::nullopt, std::nullopt, {.family = AF_INET});
        ut->sendto("from nowhere", server);
        CHECK(co_await corio_test::eventually([&] { return sp->data.size() == 1; }));
        CHECK(sockname(*ut).port() != 0); // bound by the kernel on first send

        for (auto* t : {ct.get(), st.get(), r1.get(), r2.get(), ut.get(), kt.get()}) t->close();
        co_await corio_test::settle();
    });
    CHECK(corio_test::open_fd_count() == fds_before);
}

TEST_CASE("a throwing factory or connection_made: the exception propagates, the socket is closed") {
    struct bad_made : recorder {
        void connection_made(corio::datagram_transport&) override {
            throw std::runtime_error("no thanks");
        }
        void connection_lost(std::exception_ptr) override { FAIL("connection_lost after a failed connection_made"); }
    };
    const int fds_before = corio_test::open_fd_count();
    corio::run([]() -> task<> {
        int factory_calls = 0;
        auto factory = [&]() -> std::shared_ptr<recorder> {
            ++factory_calls;
            throw std::runtime_error("factory failed");
        };
        std::string what;
        try {
            co_await corio::create_datagram_endpoint(factory, address{"127.0.0.1", 0});
        } catch (const std::runtime_error& e) {
            what = e.what();
        }
        CHECK(what == "factory failed");
        CHECK(factory_calls == 1);

        what.clear();
        try {
            co_await open<bad_made>(address{"127.0.0.1", 0});
        } catch (const std::runtime_error& e) {
            what = e.what();
        }
        CHECK(what == "no thanks");
        co_await corio_test::settle();

        auto null_factory = [] { return std::shared_ptr<recorder>(); };
        CHECK_THROWS_AS(co_await corio::create_datagram_endpoint(null_factory, address{"127.0.0.1", 0}),
                        std::invalid_argument);
    });
    CHECK(corio_test::open_fd_count() == fds_before);
}

TEST_CASE("a create_datagram_endpoint task cancelled before it starts creates nothing") {
    const int fds_before = corio_test::open_fd_count();
    corio::run([]() -> task<> {
        int calls = 0;
        auto factory = [&calls] {
            ++calls;
            return std::make_shared<recorder>();
        };
        auto t = corio::create_task(corio::create_datagram_endpoint(factory, address{"127.0.0.1", 0}));
        t.cancel();
        co_await t.wait_done();
        CHECK(t.cancelled());
        CHECK(calls == 0);
    });
    CHECK(corio_test::open_fd_count() == fds_before);
}

TEST_CASE("closing the loop with endpoints open releases them (no leak, sockets closed)") {
    const int fds_before = corio_test::open_fd_count();
    std::weak_ptr<recorder> wp1, wp2;
    std::shared_ptr<corio::datagram_transport> kept;
    std::shared_ptr<recorder> kept_protocol;
    {
        corio::event_loop loop;
        auto e1 = loop.run_until_complete(open<echo_server>(address{"127.0.0.1", 0}));
        auto e2 = loop.run_until_complete(open(std::nullopt, sockname(*e1.first)));
        e2.first->sendto("in flight"); // unread by the server when the loop closes
        wp1 = e1.second;
        wp2 = e2.second;
        kept = e2.first; // a user keeps one transport beyond the loop's close
        kept_protocol = e2.second;
        e1 = {};
        e2 = {};
        loop.close();
        CHECK(wp1.expired()); // the loop's references went with its fd table
        CHECK(!wp2.expired());
        kept->close(); // on a closed loop: just closes the socket, no connection_lost
        CHECK(kept->is_closing());
        CHECK(kept_protocol->lost == 0);
    }
    kept.reset();
    kept_protocol.reset();
    CHECK(wp2.expired());
    CHECK(corio_test::open_fd_count() == fds_before);
}
