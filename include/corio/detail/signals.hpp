#pragma once
/// \file corio/detail/signals.hpp
/// The process-wide part of signal handling. A signal can only have one disposition per
/// process, so the handler is global: it records the signal and writes to the wake-up fd of
/// the loop that registered it (both async-signal-safe); that loop then runs the user's
/// callback as an ordinary callback on its own thread.

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdint>

#include <unistd.h>

namespace corio::detail {

#if defined(NSIG)
inline constexpr int signal_limit = NSIG;
#else
inline constexpr int signal_limit = 65;
#endif

struct signal_slot {
    std::atomic<int> wake_fd{-1};    ///< the owning loop's notify fd, -1 if none
    std::atomic<bool> pending{false};
};

inline signal_slot g_signal_slots[signal_limit];

static_assert(std::atomic<int>::is_always_lock_free && std::atomic<bool>::is_always_lock_free,
              "signal handlers need lock-free atomics");

extern "C" inline void corio_signal_handler(int sig) {
    if (sig <= 0 || sig >= signal_limit) return;
    const int saved = errno;
    signal_slot& s = g_signal_slots[sig];
    s.pending.store(true, std::memory_order_release);
    int fd = s.wake_fd.load(std::memory_order_acquire);
    if (fd >= 0) {
        std::uint64_t one = 1;
        [[maybe_unused]] ssize_t r = ::write(fd, &one, sizeof one);
    }
    errno = saved;
}

} // namespace corio::detail
