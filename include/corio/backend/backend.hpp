#pragma once
/// \file corio/backend/backend.hpp
/// The one place where the default backend is chosen.
///
/// - Linux: epoll (corio/backend/epoll.hpp).
/// - macOS, FreeBSD, OpenBSD, NetBSD, DragonFly: kqueue (corio/backend/kqueue.hpp).
/// - Defining `CORIO_BACKEND_KQUEUE` selects kqueue wherever `<sys/event.h>` exists; on Linux
///   that is only with the test emulation's include directory (tests/support/kqueue) on the
///   path, which is how corio's test suite runs with the kqueue backend on Linux (build option
///   CORIO_KQUEUE_EMULATION). Define it for the whole program or not at all: the event loop's
///   layout depends on it.
///
/// Both backends are included wherever they compile (each header guards itself), so either
/// can also be named directly, and each is checked against the `backend` concept.

#include <corio/backend/concept.hpp>
#include <corio/backend/epoll.hpp>
#include <corio/backend/kqueue.hpp>

#if defined(CORIO_BACKEND_KQUEUE) || defined(__APPLE__) || defined(__FreeBSD__) ||              \
    defined(__OpenBSD__) || defined(__NetBSD__) || defined(__DragonFly__)
#if !__has_include(<sys/event.h>)
#error "corio: the kqueue backend needs <sys/event.h> (on Linux: -I tests/support/kqueue, the test emulation)"
#endif
namespace corio::backend {
/// The default backend of this platform.
using default_backend = kqueue_backend;
} // namespace corio::backend
#elif defined(__linux__)
namespace corio::backend {
/// The default backend of this platform.
using default_backend = epoll_backend;
} // namespace corio::backend
#else
#error "corio: no event-loop backend for this platform (epoll on Linux, kqueue on the BSDs and macOS)"
#endif

namespace corio::backend {
static_assert(backend<default_backend>);
} // namespace corio::backend
