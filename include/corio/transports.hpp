#pragma once
/// \file corio/transports.hpp
/// Transports: asyncio's low-level connection objects (asyncio.transports). A transport owns a
/// socket or pipe and moves bytes; a *protocol* (corio/protocols.hpp) receives them through
/// callbacks. Streams (corio/streams.hpp) are built on this pair.
///
/// | asyncio | corio |
/// |---|---|
/// | `BaseTransport` | `corio::base_transport` |
/// | `ReadTransport` / `WriteTransport` | `read_transport` / `write_transport` |
/// | `Transport` | `corio::transport` |
/// | `DatagramTransport` | `corio::datagram_transport` |
///
/// Ownership: transports live in `std::shared_ptr`s. While a connection is open the event loop
/// holds one reference, so a transport outlives the `connection_lost` call that ends it; the
/// transport owns its protocol. The `transport&` given to `connection_made` stays valid at
/// least until `connection_lost` returns; `shared_from_this()` gives a lasting reference.
///
/// All members are loop-thread only, like the rest of the loop's objects.

#include <corio/address.hpp>

#include <any>
#include <cstddef>
#include <memory>
#include <optional>
#include <string_view>
#include <utility>

namespace corio {

/// What every transport has (asyncio.BaseTransport).
class base_transport : public std::enable_shared_from_this<base_transport> {
public:
    virtual ~base_transport() = default;

    /// Closes the transport: data already written is still sent, then the protocol's
    /// `connection_lost(nullptr)` is called (on a later iteration, never inside close()).
    /// Idempotent.
    virtual void close() = 0;
    /// True once close() or abort() was called or the connection was lost.
    virtual bool is_closing() const noexcept = 0;

    /// Optional information about the transport, as asyncio's `get_extra_info(name)`:
    /// "peername" and "sockname" give a `corio::address`, "socket" and "pipe" the file
    /// descriptor (`int`). Unknown names give an empty `std::any`.
    virtual std::any get_extra_info(std::string_view name) const = 0;

    /// get_extra_info as a typed value: empty if the name is unknown or holds another type.
    template <class T>
    std::optional<T> extra_info(std::string_view name) const {
        std::any a = get_extra_info(name);
        if (const T* p = std::any_cast<T>(&a)) return *p;
        return std::nullopt;
    }

protected:
    ///@{
    /// Only derived classes make, copy and assign one (no slicing through the base).
    base_transport() = default;
    base_transport(const base_transport&) = default;
    base_transport& operator=(const base_transport&) = default;
    ///@}
};

/// The reading half (asyncio.ReadTransport).
class read_transport : public virtual base_transport {
public:
    /// Stops calling the protocol's data_received until resume_reading(). Idempotent.
    virtual void pause_reading() = 0;
    /// Resumes calling data_received. Idempotent.
    virtual void resume_reading() = 0;
    /// True unless reading is paused or the transport is closing.
    virtual bool is_reading() const noexcept = 0;
};

/// The writing half (asyncio.WriteTransport).
class write_transport : public virtual base_transport {
public:
    /// Queues `data` for sending and returns at once (never blocks; sends what it can right
    /// away). When the buffered size passes the high-water mark the protocol's
    /// `pause_writing()` is called, and `resume_writing()` once it drains below the low-water
    /// mark. Throws `std::runtime_error` after write_eof(); data written after the transport
    /// closed or the connection was lost is dropped (asyncio logs a warning instead).
    virtual void write(std::string_view data) = 0;
    /// Closes the write side once buffered data is sent (shutdown(SHUT_WR)); reading goes on.
    virtual void write_eof() = 0;
    /// True if write_eof() is supported (TCP, Unix stream sockets, pipes).
    virtual bool can_write_eof() const noexcept = 0;
    /// Closes at once: buffered data is discarded, connection_lost(nullptr) follows.
    virtual void abort() = 0;
    /// Bytes buffered and not yet handed to the kernel.
    virtual std::size_t get_write_buffer_size() const noexcept = 0;
    /// Sets the high- and low-water marks for pause_writing/resume_writing. Defaults as asyncio:
    /// high 64 KiB, low = high / 4; giving only `high` sets low = high / 4, giving only `low`
    /// sets high = 4 * low. Throws `std::invalid_argument` if low > high.
    virtual void set_write_buffer_limits(std::optional<std::size_t> high = std::nullopt,
                                         std::optional<std::size_t> low = std::nullopt) = 0;
    /// The current `{low, high}` water marks (asyncio's order).
    virtual std::pair<std::size_t, std::size_t> get_write_buffer_limits() const noexcept = 0;
};

/// A bidirectional stream transport: TCP, Unix stream socket (asyncio.Transport).
class transport : public read_transport, public write_transport {};

/// A datagram transport: UDP or Unix datagram socket (asyncio.DatagramTransport).
class datagram_transport : public virtual base_transport {
public:
    /// Sends one datagram to `to` (never blocks: queued if the socket is not writable).
    /// Errors of the send are given to the protocol's error_received.
    virtual void sendto(std::string_view data, const address& to) = 0;
    /// Sends one datagram to the remote address the endpoint was connected to. Throws
    /// `std::logic_error` if the endpoint has no remote address.
    virtual void sendto(std::string_view data) = 0;
    /// Closes at once, dropping queued datagrams.
    virtual void abort() = 0;
    /// Bytes queued and not yet sent.
    virtual std::size_t get_write_buffer_size() const noexcept = 0;
    /// Sets the water marks at which the protocol's pause_writing/resume_writing are called;
    /// same rules and defaults as write_transport::set_write_buffer_limits.
    virtual void set_write_buffer_limits(std::optional<std::size_t> high = std::nullopt,
                                         std::optional<std::size_t> low = std::nullopt) = 0;
    /// The current `{low, high}` water marks.
    virtual std::pair<std::size_t, std::size_t> get_write_buffer_limits() const noexcept = 0;
};

} // namespace corio
