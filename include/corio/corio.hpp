#pragma once
/// \file corio/corio.hpp
/// Everything corio has: `#include <corio/corio.hpp>`.
///
/// | header                 | asyncio                          |
/// |------------------------|----------------------------------|
/// | corio/event_loop.hpp   | events, base_events (the loop)   |
/// | corio/future.hpp       | futures                          |
/// | corio/task.hpp         | tasks (task, create_task, ...)   |
/// | corio/sleep.hpp        | tasks.sleep                      |
/// | corio/runners.hpp      | runners (run)                    |
/// | corio/exceptions.hpp   | exceptions                       |
/// | corio/testing.hpp      | test_utils (virtual time)        |

/// \namespace corio
/// Everything corio has: asyncio's names, in C++. `corio::detail` is the implementation, not API.

#include <corio/event_loop.hpp>
#include <corio/exceptions.hpp>
#include <corio/future.hpp>
#include <corio/runners.hpp>
#include <corio/sleep.hpp>
#include <corio/task.hpp>
#include <corio/testing.hpp>
