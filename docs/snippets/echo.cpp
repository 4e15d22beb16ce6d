// README.md, "Networking": asyncio's TCP echo server and client from the streams docs, in one
// program: the server listens on a free port, the client sends one line and reads the echo.
#include <corio/corio.hpp>

#include <cstdio>
#include <string>

// [readme:echo]
corio::task<> handle_echo(corio::stream_reader reader, corio::stream_writer writer) {
    std::string data = co_await reader.readline();          // data = await reader.readline()
    std::printf("server got %s", data.c_str());
    writer.write(data);                                      // writer.write(data)
    co_await writer.drain();                                 // await writer.drain()
    writer.close();                                          // writer.close()
    co_await writer.wait_closed();                           // await writer.wait_closed()
}

corio::task<> main_coro() {
    corio::server srv = co_await corio::start_server(handle_echo, "127.0.0.1", 0);
    auto [reader, writer] = co_await corio::open_connection("127.0.0.1", srv.port());
    writer.write("Hello World!\n");
    std::string echo = co_await reader.readline();
    std::printf("client got %s", echo.c_str());
    writer.close();
    srv.close();
    co_await srv.wait_closed();
}
// [/readme:echo]

int main() { corio::run(main_coro()); }

// out: server got Hello World!
// out: client got Hello World!
