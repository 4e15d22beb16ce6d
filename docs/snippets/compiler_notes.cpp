// README.md, "Compiler notes": the spelling that GCC 12 (PR 100611) compiles correctly. A
// temporary lambda that captures by value must not be created in the statement that contains
// the co_await; name it first.
#include <corio/corio.hpp>

#include <cstdio>
#include <string>
#include <utility>

corio::task<> main_coro() {
    // [readme:gcc-pr-100611]
    auto fn = [s = std::string("x")]() -> corio::task<int> { co_return s.size(); };
    int n = co_await corio::co_invoke(std::move(fn));     // not: co_await co_invoke([s]{...})
    // [/readme:gcc-pr-100611]
    std::printf("n=%d\n", n);
}

int main() { corio::run(main_coro()); }

// out: n=1
