// Conan test_package: the installed headers compile, link (threads) and run.
#include <corio/corio.hpp>

#include <chrono>
#include <cstdio>

using namespace std::chrono_literals;

corio::task<int> answer() {
    co_await corio::sleep(1ms);
    co_return 42;
}

corio::task<int> main_coro() {
    auto t = corio::create_task(answer(), "answer");
    co_return co_await t;
}

int main() {
    const int value = corio::run(main_coro());
    std::printf("corio test_package: %d\n", value);
    return value == 42 ? 0 : 1;
}
