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
/// | corio/gather.hpp       | tasks.gather (+ none, outcome)   |
/// | corio/shield.hpp       | tasks.shield                     |
/// | corio/wait.hpp         | tasks.wait                       |
/// | corio/timeouts.hpp     | tasks.wait_for, timeouts         |
/// | corio/as_completed.hpp | tasks.as_completed               |
/// | corio/task_group.hpp   | taskgroups                       |
/// | corio/async_generator.hpp | async generators              |
/// | corio/pool_executor.hpp | the articles' AsyncPoolExecutor |
/// | corio/queue.hpp        | queues                           |
/// | corio/locks.hpp        | locks (+ barrier)                |
/// | corio/testing.hpp      | test_utils (virtual time)        |
/// | corio/executor.hpp     | to_thread, run_in_executor, concurrent.futures.ThreadPoolExecutor |
/// | corio/address.hpp      | socket addresses ((host, port) tuples) |
/// | corio/resolver.hpp     | getaddrinfo, socket.getservbyname |
/// | corio/transports.hpp   | transports                       |
/// | corio/protocols.hpp    | protocols                        |
/// | corio/net.hpp          | create_connection, create_server, Server (TCP, Unix) |
/// | corio/datagram.hpp     | create_datagram_endpoint (UDP, Unix datagrams) |
/// | corio/streams.hpp      | streams (open_connection, start_server, StreamReader/Writer) |
/// | corio/subprocess.hpp   | subprocess (create_subprocess_exec) |

/// \namespace corio
/// Everything corio has: asyncio's names, in C++. `corio::detail` is the implementation, not API.

#include <corio/address.hpp>
#include <corio/as_completed.hpp>
#include <corio/async_generator.hpp>
#include <corio/datagram.hpp>
#include <corio/event_loop.hpp>
#include <corio/exceptions.hpp>
#include <corio/executor.hpp>
#include <corio/future.hpp>
#include <corio/gather.hpp>
#include <corio/locks.hpp>
#include <corio/net.hpp>
#include <corio/pool_executor.hpp>
#include <corio/protocols.hpp>
#include <corio/queue.hpp>
#include <corio/resolver.hpp>
#include <corio/runners.hpp>
#include <corio/shield.hpp>
#include <corio/sleep.hpp>
#include <corio/streams.hpp>
#include <corio/subprocess.hpp>
#include <corio/task.hpp>
#include <corio/task_group.hpp>
#include <corio/testing.hpp>
#include <corio/timeouts.hpp>
#include <corio/transports.hpp>
#include <corio/wait.hpp>
