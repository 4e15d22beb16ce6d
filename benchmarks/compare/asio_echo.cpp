// The Asio echo server of the side-by-side networking benchmark (run_net.sh): standalone
// Asio with C++20 coroutines (asio::awaitable, co_spawn, use_awaitable) on one
// single-threaded io_context, the idiomatic shape of Asio's own
// examples/cpp20/coroutines/echo_server.cpp. Not part of the CMake/meson build.
//
//   g++ -std=c++20 -O2 -DNDEBUG -pthread asio_echo.cpp -o asio_echo
//   asio_echo [--port 0]        # prints the real port on stdout, serves until SIGINT/SIGTERM
//
// Asio 1.22 needs -DASIO_HAS_CO_AWAIT=1 -DASIO_HAS_STD_COROUTINE=1 with clang (see asio_core.cpp).
#include <asio.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#if !defined(ASIO_HAS_CO_AWAIT)
#error "no Asio co_await support: use g++ -std=c++20, or clang with -DASIO_HAS_CO_AWAIT=1 -DASIO_HAS_STD_COROUTINE=1"
#endif

using asio::ip::tcp;

// One connection: read what arrived (up to 64 KiB), write it all back, until EOF or an error.
static asio::awaitable<void> echo(tcp::socket socket) {
    socket.set_option(tcp::no_delay(true));
    char data[65536];
    try {
        for (;;) {
            std::size_t n = co_await socket.async_read_some(asio::buffer(data), asio::use_awaitable);
            co_await asio::async_write(socket, asio::buffer(data, n), asio::use_awaitable);
        }
    } catch (const std::system_error&) {
        // EOF or reset: the client went away.
    }
}

static asio::awaitable<void> listener(tcp::acceptor acceptor) {
    for (;;) {
        tcp::socket socket = co_await acceptor.async_accept(asio::use_awaitable);
        asio::co_spawn(acceptor.get_executor(), echo(std::move(socket)), asio::detached);
    }
}

int main(int argc, char** argv) {
    unsigned short port = 0;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--port") == 0 && i + 1 < argc) port = static_cast<unsigned short>(std::atoi(argv[++i]));
        else {
            std::fprintf(stderr, "usage: asio_echo [--port N]\n");
            return 2;
        }
    }
    asio::io_context io(1);
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));  // reuse_address, SOMAXCONN
    std::printf("%u\n", static_cast<unsigned>(acceptor.local_endpoint().port()));
    std::fflush(stdout);
    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](auto, auto) { io.stop(); });
    asio::co_spawn(io, listener(std::move(acceptor)), asio::detached);
    io.run();
    return 0;
}
