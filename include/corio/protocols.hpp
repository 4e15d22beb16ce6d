#pragma once
/// \file corio/protocols.hpp
/// Protocols: the callback interfaces transports call (asyncio.protocols). Derive, override
/// what you need, and give the connection functions a factory returning `std::shared_ptr<P>`:
///
/// ```
/// struct echo : corio::protocol {
///     corio::transport* t = nullptr;
///     void connection_made(corio::transport& tr) override { t = &tr; }
///     void data_received(std::string_view data) override { t->write(data); }
/// };
/// auto srv = co_await loop.create_server([] { return std::make_shared<echo>(); }, "127.0.0.1", 0);
/// ```
///
/// Callbacks run on the loop thread, one at a time, in the order asyncio documents:
/// `connection_made`, then any number of `data_received`, then at most one `eof_received`,
/// then exactly one `connection_lost` — except when `connection_made` itself throws (the
/// connection is aborted without it) or the loop is closed with the connection still open
/// (it is dropped without callbacks, as asyncio drops it). An exception escaping a callback goes to the loop's
/// exception handler. As in asyncio, a stream transport is then aborted (connection_lost gets
/// that exception), while a datagram endpoint keeps working.

#include <corio/address.hpp>
#include <corio/transports.hpp>

#include <exception>
#include <string_view>

namespace corio {

/// What every protocol has (asyncio.BaseProtocol).
class base_protocol {
public:
    virtual ~base_protocol() = default;
    /// The connection ended: `exc` is null for a normal close or EOF, else the error (a
    /// `std::system_error` for a reset, for instance). Called once (see the file comment).
    virtual void connection_lost(std::exception_ptr exc) { (void)exc; }
    /// The transport's write buffer went over its high-water mark: stop writing.
    virtual void pause_writing() {}
    /// The transport's write buffer drained below its low-water mark: writing may resume.
    virtual void resume_writing() {}

protected:
    ///@{
    /// Only derived classes make, copy and assign one (no slicing through the base).
    base_protocol() = default;
    base_protocol(const base_protocol&) = default;
    base_protocol& operator=(const base_protocol&) = default;
    ///@}
};

/// A stream protocol (asyncio.Protocol), for TCP and Unix stream connections.
class protocol : public base_protocol {
public:
    /// The connection is up; `t` stays valid at least until connection_lost returns.
    virtual void connection_made(transport& t) { (void)t; }
    /// Some bytes arrived (a view valid only during the call).
    virtual void data_received(std::string_view data) { (void)data; }
    /// The peer closed its write side. Return true to keep the transport open (half-closed:
    /// you may still write), false to have it closed (asyncio's default).
    virtual bool eof_received() { return false; }
};

/// A datagram protocol (asyncio.DatagramProtocol), for UDP and Unix datagram endpoints.
class datagram_protocol : public base_protocol {
public:
    /// The endpoint is ready; `t` stays valid at least until connection_lost returns.
    virtual void connection_made(datagram_transport& t) { (void)t; }
    /// One datagram arrived from `from` (the view is valid only during the call).
    virtual void datagram_received(std::string_view data, const address& from) {
        (void)data;
        (void)from;
    }
    /// A send or receive failed (an ICMP "port unreachable" shows up here as
    /// ECONNREFUSED); the endpoint stays open.
    virtual void error_received(std::exception_ptr exc) { (void)exc; }
};

} // namespace corio
