#pragma once
/// \file corio/backend/backend.hpp
/// The one place where the default backend is chosen.

#include <corio/backend/concept.hpp>

#if defined(__linux__)
#include <corio/backend/epoll.hpp>
namespace corio::backend {
/// The default backend of this platform.
using default_backend = epoll_backend;
} // namespace corio::backend
#else
#error "corio: no event-loop backend for this platform yet (epoll on Linux; kqueue is planned)"
#endif
