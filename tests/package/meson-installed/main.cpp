// The consumer every package test builds (tests/package/run.sh): it must
// print "corio consumer: 42" and exit 0.
#include <corio/corio.hpp>

#include <chrono>
#include <cstdio>

using namespace std::chrono_literals;

corio::task<int> answer() {
    co_await corio::sleep(1ms);
    co_return 42;
}

corio::task<int> main_coro() {
    auto t = corio::create_task(answer());
    co_return co_await t;
}

int main() {
    int result = corio::run(main_coro());
    std::printf("corio consumer: %d\n", result);
    return result == 42 ? 0 : 1;
}
