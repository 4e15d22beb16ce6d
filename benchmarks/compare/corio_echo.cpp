// corio's echo server of the side-by-side networking benchmark (run_net.sh), written the two
// ways asyncio_echo.py is, on one single-threaded corio loop. Not part of the CMake/meson
// build.
//
//   g++ -std=c++20 -O2 -DNDEBUG -I include benchmarks/compare/corio_echo.cpp -o corio_echo
//   corio_echo [--streams] [--port 0]   # prints the real port on stdout; serves until SIGINT/SIGTERM
//
// Default, protocols and transports (corio/net.hpp):
//   class Echo(asyncio.Protocol):                  | struct echo : corio::protocol {
//       def connection_made(self, transport):      |     void connection_made(corio::transport& t) override { m_t = &t; }
//           self.transport = transport             |
//       def data_received(self, data):             |     void data_received(std::string_view d) override { m_t->write(d); }
//           self.transport.write(data)             | };
//   await loop.create_server(Echo, host, port)     | co_await corio::create_server(factory, host, port, opts)
//
// --streams, streams (corio/streams.hpp):
//   async def handle(reader, writer):              | corio::task<> handle(corio::stream_reader reader, corio::stream_writer writer) {
//       while data := await reader.read(65536):    |     while (!(data = co_await reader.read(65536)).empty()) {
//           writer.write(data)                     |         writer.write(data);
//           await writer.drain()                   |         co_await writer.drain();
//   await asyncio.start_server(handle, host, port) | co_await corio::start_server(handle, host, port, opts)
#include <corio/corio.hpp>
#include <corio/net.hpp>
#include <corio/streams.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>

namespace {

// ---- protocols and transports ---------------------------------------------------------------
struct echo : corio::protocol {
    corio::transport* m_t = nullptr;
    void connection_made(corio::transport& t) override { m_t = &t; }
    void data_received(std::string_view data) override { m_t->write(data); }
};

// ---- streams --------------------------------------------------------------------------------
corio::task<> handle(corio::stream_reader reader, corio::stream_writer writer) {
    try {
        std::string data;
        while (!(data = co_await reader.read(65536)).empty()) {
            writer.write(data);
            co_await writer.drain();
        }
    } catch (const std::system_error&) {
        // A reset: the client went away (asyncio_echo.py's `except ConnectionError`).
    }
    writer.close();
}

corio::task<int> serve(bool streams, int port) {
    corio::event_loop& loop = corio::get_running_loop();
    corio::server srv;
    if (streams) {
        corio::stream_server_options so;
        so.backlog = 1024;
        auto handler = handle;
        srv = co_await corio::start_server(handler, "127.0.0.1", port, so);
    } else {
        corio::server_options so;
        so.backlog = 1024;
        auto factory = [] { return std::make_shared<echo>(); };
        srv = co_await corio::create_server(factory, "127.0.0.1", port, so);
    }
    std::printf("%d\n", static_cast<int>(srv.port()));
    std::fflush(stdout);

    corio::event stop;
    auto on_signal = [&stop] { stop.set(); };
    loop.add_signal_handler(SIGINT, on_signal);
    loop.add_signal_handler(SIGTERM, on_signal);
    co_await stop.wait();
    loop.remove_signal_handler(SIGINT);
    loop.remove_signal_handler(SIGTERM);
    srv.close();
    srv.abort_clients();
    co_return 0;
}

} // namespace

int main(int argc, char** argv) {
    bool streams = false;
    int port = 0;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--streams") == 0) streams = true;
        else if (std::strcmp(argv[i], "--port") == 0 && i + 1 < argc) port = std::atoi(argv[++i]);
        else {
            std::fprintf(stderr, "usage: corio_echo [--streams] [--port N]\n");
            return 2;
        }
    }
    try {
        return corio::run(serve(streams, port));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "corio_echo: %s\n", e.what());
        return 1;
    }
}
