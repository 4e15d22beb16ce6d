// dns_server: the AsyncIO chapter of a Python book (seeds/003), "AsyncIO for networking": a
// DNS server on UDP that answers A queries from a map, with a DatagramProtocol and
// create_datagram_endpoint. (The scraped article lost the map's literals; these are the book's:
// the author's three most recent employers.)
//
//   ip_map = {                                          | dns::zone ip_map; // builtin_zone() or --zone FILE
//       b'facebook.com.': '173.252.120.6',              |     {"facebook.com", "173.252.120.6"},
//       b'yougov.com.': '213.52.133.246',               |     {"yougov.com", "213.52.133.246"},
//       b'wipo.int.': '193.5.93.80'                     |     {"wipo.int", "193.5.93.80"},
//   }
//   def lookup_dns(data): ...                           | dns::respond(data, ip_map) in dns_message.hpp
//   def create_response(data, ip): ...                  | parses the query with bounds checks and
//                                                       | builds the response (NXDOMAIN, FORMERR, ...)
//   class DNSProtocol(asyncio.DatagramProtocol):        | struct dns_protocol : corio::datagram_protocol {
//       def connection_made(self, transport):           |     void connection_made(corio::datagram_transport& t) override {
//           self.transport = transport                  |         transport = &t;
//                                                       |     }
//       def datagram_received(self, data, addr):        |     void datagram_received(std::string_view data,
//                                                       |                            const corio::address& addr) override {
//           print("Received request from {}".format(addr[0]))
//           domain, ip = lookup_dns(data)               |         dns::outcome o = dns::respond(data, ip_map);
//           print("Sending IP {} for {} to {}".format(  |         std::printf("Sending IP %s for %s to %s\n", ...);
//               domain.decode(), ip, addr[0]))          |
//           self.transport.sendto(                      |         if (o.reply) transport->sendto(*o.reply, addr);
//               create_response(data, ip), addr)        |     }
//                                                       | };
//   loop = asyncio.get_event_loop()                     | corio::task<> serve(...) {
//   transport, protocol = loop.run_until_complete(      |     auto [transport, protocol] = co_await
//       loop.create_datagram_endpoint(                  |         loop.create_datagram_endpoint(
//           DNSProtocol, local_addr=('127.0.0.1', 4343)))|            factory, corio::address{host, port});
//   print("DNS Server running")                         |     std::printf("Serving on %s\n", ...);
//   with suppress(KeyboardInterrupt):                   |     co_await stop.wait(); // SIGINT or SIGTERM
//       loop.run_forever()                              |
//   transport.close()                                   |     transport->close();
//   loop.close()                                        | }   // corio::run closes the loop
//
// Unlike the article's, this server never trusts the packet: see dns_message.hpp for what it
// answers to short, looping, oversized or otherwise malformed queries.
//
// Usage: dns_server [--host 127.0.0.1] [--port 4343] [--zone FILE] [--quiet]
//   --port 0 picks a free port; the line "Serving on HOST:PORT" gives the real one.
//   --zone FILE: lines "NAME IPV4" ('#' comments) instead of the built-in map.
//   Try it: dig @127.0.0.1 -p 4343 facebook.com A    (or: nslookup -port=4343 wipo.int 127.0.0.1)
// dns_server --demo: the tour's mode: the same server on a free port of 127.0.0.1 (built-in
//   map), and in the same process a client (another datagram endpoint) that sends it an A query
//   for a known name, one for an unknown name, a malformed packet and one more query, printing
//   each answer in one dig-like line; then the server is closed and the program exits 0.

#include <corio/corio.hpp>
#include <corio/datagram.hpp>

#include "dns_message.hpp"

#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace {

struct options {
    std::string host = "127.0.0.1";
    int port = 4343;
    std::string zone_file;
    bool quiet = false;
    bool demo = false;
};

dns::zone builtin_zone() {
    dns::zone z;
    z.add("facebook.com", "173.252.120.6");
    z.add("yougov.com", "213.52.133.246");
    z.add("wipo.int", "193.5.93.80");
    return z;
}

const char* type_name(std::uint16_t t) {
    switch (t) {
    case dns::type_a: return "A";
    case dns::type_aaaa: return "AAAA";
    case dns::type_any: return "ANY";
    default: return nullptr;
    }
}

struct dns_protocol : corio::datagram_protocol {
    explicit dns_protocol(const dns::zone& z, bool quiet) : ip_map(z), quiet(quiet) {}

    void connection_made(corio::datagram_transport& t) override { transport = &t; }

    void datagram_received(std::string_view data, const corio::address& addr) override {
        const std::string who = addr.host();
        if (!quiet) std::printf("Received request from %s\n", who.c_str());
        dns::outcome o = dns::respond(data, ip_map);
        if (!quiet) log(o, who);
        if (o.reply) transport->sendto(*o.reply, addr);
    }

    void error_received(std::exception_ptr e) override {
        // A client that went away (ICMP unreachable) must not stop the server: log and go on.
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& ex) {
            if (!quiet) std::printf("Error: %s\n", ex.what());
        }
    }

    void connection_lost(std::exception_ptr) override { closed.set(); }

    void log(const dns::outcome& o, const std::string& who) const {
        const std::string name = o.name == "." ? o.name : o.name + '.';
        if (!o.reply) {
            std::printf("Dropping packet from %s: %s\n", who.c_str(), o.why.c_str());
        } else if (o.answer) {
            std::printf("Sending IP %s for %s to %s\n", dns::to_string(*o.answer).c_str(),
                        name.c_str(), who.c_str());
        } else if (o.rc == dns::noerror) {
            const char* t = type_name(o.qtype);
            std::string type = t ? t : "TYPE" + std::to_string(o.qtype);
            std::printf("Sending no %s record (NODATA) for %s to %s\n", type.c_str(), name.c_str(),
                        who.c_str());
        } else if (o.rc == dns::nxdomain) {
            std::printf("Sending NXDOMAIN for %s to %s\n", name.c_str(), who.c_str());
        } else {
            std::printf("Sending %s to %s (%s)\n", dns::rcode_name(o.rc), who.c_str(),
                        o.why.c_str());
        }
    }

    const dns::zone& ip_map;
    bool quiet;
    corio::datagram_transport* transport = nullptr;
    corio::event closed;
};

/// The server's endpoint: the transport and the protocol answering on it.
using dns_endpoint =
    std::pair<std::shared_ptr<corio::datagram_transport>, std::shared_ptr<dns_protocol>>;

/// The article's create_datagram_endpoint(DNSProtocol, local_addr=(host, port)). Throws
/// std::system_error if the address cannot be bound (EADDRINUSE...).
corio::task<dns_endpoint> start_server(std::string host, int port, const dns::zone& ip_map,
                                       bool quiet) {
    auto& loop = corio::get_running_loop();
    const corio::address local{host, port};
    auto factory = [&ip_map, quiet] { return std::make_shared<dns_protocol>(ip_map, quiet); };
    co_return co_await loop.create_datagram_endpoint(factory, local);
}

/// The article's transport.close(), waiting until the socket is closed.
corio::task<> stop_server(dns_endpoint server, bool quiet) {
    server.first->close();
    co_await server.second->closed.wait(); // connection_lost: the socket is closed
    if (!quiet) std::printf("Server stopped\n");
}

corio::task<> serve(options opts, const dns::zone& ip_map) {
    auto& loop = corio::get_running_loop();
    corio::event stop;
    loop.add_signal_handler(SIGINT, [&stop] { stop.set(); });
    loop.add_signal_handler(SIGTERM, [&stop] { stop.set(); });

    dns_endpoint server = co_await start_server(opts.host, opts.port, ip_map, opts.quiet);
    const auto bound = server.first->extra_info<corio::address>("sockname");
    std::printf("Serving on %s\n", bound ? bound->to_string().c_str() : "?");
    std::fflush(stdout);

    co_await stop.wait();
    co_await stop_server(std::move(server), opts.quiet);
}

// --- the tour's mode -------------------------------------------------------------------------

/// The demo's client: a datagram endpoint connected to the server, handing the reply to the
/// query in flight (matched by its ID) to the future the client waits on.
struct client_protocol : corio::datagram_protocol {
    void datagram_received(std::string_view data, const corio::address&) override {
        if (!reply || reply->done() || data.size() < 2) return; // late, or not a DNS reply
        const auto id = static_cast<std::uint16_t>(static_cast<std::uint8_t>(data[0]) << 8 |
                                                   static_cast<std::uint8_t>(data[1]));
        if (id == expected_id) reply->set_result(std::string(data));
    }
    // error_received (ECONNREFUSED if the server is gone): nothing to do, the timeout tells.
    void connection_lost(std::exception_ptr) override { closed.set(); }

    std::uint16_t expected_id = 0;
    std::optional<corio::future<std::string>> reply;
    corio::event closed;
};

/// A reply in one line, as dig shows it: the status, then the answer section's A records
/// ("NOERROR  facebook.com. 60 IN A 173.252.120.6").
std::string describe_reply(std::string_view packet) {
    dns::reader r(packet);
    std::uint16_t id = 0, flags = 0, qd = 0, an = 0, ns = 0, ar = 0, type = 0, cls = 0, rdlen = 0;
    std::uint32_t ttl = 0;
    std::string wire, name;
    if (!r.u16(id) || !r.u16(flags) || !r.u16(qd) || !r.u16(an) || !r.u16(ns) || !r.u16(ar))
        return "(a reply shorter than a header)";
    std::string line = dns::rcode_name(flags & 0xF);
    for (unsigned i = 0; i < qd; ++i)
        if (!r.name(wire, name) || !r.u16(type) || !r.u16(cls)) return line + " (bad question)";
    for (unsigned i = 0; i < an; ++i) {
        if (!r.name(wire, name) || !r.u16(type) || !r.u16(cls) || !r.u32(ttl) || !r.u16(rdlen))
            return line + " (bad answer)";
        dns::ipv4 a{};
        if (type != dns::type_a || rdlen != 4 || !r.u8(a[0]) || !r.u8(a[1]) || !r.u8(a[2]) ||
            !r.u8(a[3]))
            return line + " (not an A record)";
        line += "  " + name + ". " + std::to_string(ttl) + " IN A " + dns::to_string(a);
    }
    return line;
}

/// Sends one packet and waits (at most 2 s: a lost datagram must not hang the tour) for the
/// reply with its ID. Prints "client: WHAT -> REPLY"; false if no reply came.
corio::task<bool> ask(corio::datagram_transport& transport, client_protocol& client,
                      std::string what, std::string packet) {
    using namespace std::chrono_literals;
    auto& loop = corio::get_running_loop();
    client.expected_id = static_cast<std::uint16_t>(static_cast<std::uint8_t>(packet[0]) << 8 |
                                                    static_cast<std::uint8_t>(packet[1]));
    corio::future<std::string> reply = loop.create_future<std::string>();
    client.reply = reply;
    transport.sendto(packet);
    std::string answer;
    bool timed_out = false;
    try {
        answer = co_await corio::wait_for(reply, 2s);
    } catch (const corio::timeout_error&) {
        timed_out = true;
    }
    client.reply.reset();
    if (timed_out) {
        std::printf("client: %-28s -> no reply within 2 s\n", what.c_str());
        co_return false;
    }
    std::printf("client: %-28s -> %s\n", what.c_str(), describe_reply(answer).c_str());
    co_return true;
}

/// The server on a free port, and a client asking it four questions, one at a time (so the
/// server's log and the client's lines always come in the same order).
corio::task<int> demo(const dns::zone& ip_map) {
    auto& loop = corio::get_running_loop();
    dns_endpoint server = co_await start_server("127.0.0.1", 0, ip_map, false);
    std::printf("DNS Server running (on a free port of 127.0.0.1)\n");
    const auto bound = server.first->extra_info<corio::address>("sockname");
    if (!bound) throw std::runtime_error("the server's endpoint has no address");

    auto client_factory = [] { return std::make_shared<client_protocol>(); };
    auto [transport, client] =
        co_await loop.create_datagram_endpoint(client_factory, std::nullopt, *bound);

    // The malformed packet: a header and a question whose name is a compression pointer to
    // itself, the loop the article's lookup_dns would never get out of.
    std::string loop_packet("\x00\x03\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
                            "\xc0\x0c\x00\x01\x00\x01", 18);
    const std::pair<const char*, std::string> questions[] = {
        {"facebook.com. A", dns::make_query(1, "facebook.com").value()},
        {"example.org. A", dns::make_query(2, "example.org").value()},
        {"a name pointing to itself", loop_packet},
        {"YouGov.com. A (still there?)", dns::make_query(4, "YouGov.com").value()},
    };
    bool ok = true;
    for (const auto& [what, packet] : questions) {
        const bool answered = co_await ask(*transport, *client, what, packet);
        ok = ok && answered;
    }

    transport->close();
    co_await client->closed.wait();
    co_await stop_server(std::move(server), false);
    co_return ok ? 0 : 1;
}

void usage(const char* argv0, std::FILE* to) {
    std::fprintf(to,
                 "usage: %s [--host HOST] [--port PORT] [--zone FILE] [--quiet] | --demo\n"
                 "  A DNS server on UDP answering A queries from a map of names.\n"
                 "  --host HOST   numeric IPv4/IPv6 address to listen on (default 127.0.0.1)\n"
                 "  --port PORT   UDP port (default 4343; 0 picks a free one)\n"
                 "  --zone FILE   load the map from lines 'NAME IPV4' ('#' comments); default:\n"
                 "                facebook.com, yougov.com, wipo.int (the article's map)\n"
                 "  --quiet       do not log each request\n"
                 "Prints 'Serving on HOST:PORT', serves until SIGINT/SIGTERM, exits 0.\n"
                 "--demo: the server (built-in map) on a free port and a client in one process:\n"
                 "  four queries (known name, unknown name, malformed, known name), one line\n"
                 "  per answer, then exit (the tour's mode).\n",
                 argv0);
}

} // namespace

int main(int argc, char** argv) {
    std::setvbuf(stdout, nullptr, _IOLBF, 0); // one line at a time, even into a pipe
    options opts;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        const bool has_value = i + 1 < argc;
        if (arg == "--help" || arg == "-h") {
            usage(argv[0], stdout);
            return 0;
        } else if (arg == "--host" && has_value) {
            opts.host = argv[++i];
        } else if (arg == "--port" && has_value) {
            char* end = nullptr;
            const long p = std::strtol(argv[++i], &end, 10);
            if (!*argv[i] || *end || p < 0 || p > 65535) {
                std::fprintf(stderr, "%s: bad port '%s'\n", argv[0], argv[i]);
                return 2;
            }
            opts.port = static_cast<int>(p);
        } else if (arg == "--zone" && has_value) {
            opts.zone_file = argv[++i];
        } else if (arg == "--quiet") {
            opts.quiet = true;
        } else if (arg == "--demo") {
            opts.demo = true;
        } else {
            usage(argv[0], stderr);
            return 2;
        }
    }

    dns::zone ip_map = builtin_zone();
    if (!opts.zone_file.empty()) {
        std::ifstream in(opts.zone_file);
        if (!in) {
            std::fprintf(stderr, "%s: cannot open zone file '%s'\n", argv[0], opts.zone_file.c_str());
            return 2;
        }
        ip_map = dns::zone{};
        if (auto err = ip_map.load(in)) {
            std::fprintf(stderr, "%s: %s: %s\n", argv[0], opts.zone_file.c_str(), err->c_str());
            return 2;
        }
    }

    try {
        if (opts.demo) return corio::run(demo(builtin_zone()));
        corio::run(serve(opts, ip_map));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s: %s\n", argv[0], e.what());
        return 1;
    }
    return 0;
}
