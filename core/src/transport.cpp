#include "sparecycles/core/transport.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "sparecycles/core/log.hpp"
#include "sparecycles/core/protocol.hpp"

namespace sparecycles::net {
namespace {

void Configure(zmq::socket_t& s, const SocketConfig& cfg) {
  s.set(zmq::sockopt::maxmsgsize,
        cfg.max_message_bytes > 0 ? cfg.max_message_bytes : proto::kMaxFrameBytes);
  s.set(zmq::sockopt::linger, cfg.linger_ms);
  s.set(zmq::sockopt::sndhwm, cfg.send_hwm);
  s.set(zmq::sockopt::rcvhwm, cfg.recv_hwm);
  if (cfg.heartbeat_ivl_ms > 0) {
    s.set(zmq::sockopt::heartbeat_ivl, cfg.heartbeat_ivl_ms);
    s.set(zmq::sockopt::heartbeat_timeout, cfg.heartbeat_timeout_ms);
    s.set(zmq::sockopt::heartbeat_ttl, cfg.heartbeat_timeout_ms);
  }
  s.set(zmq::sockopt::handshake_ivl, cfg.handshake_ivl_ms);
  if (!cfg.zap_domain.empty()) s.set(zmq::sockopt::zap_domain, cfg.zap_domain);
  if (cfg.curve_server) {
    s.set(zmq::sockopt::curve_server, 1);
    s.set(zmq::sockopt::curve_secretkey, cfg.curve_secret);
  } else if (!cfg.curve_server_key.empty()) {
    s.set(zmq::sockopt::curve_serverkey, cfg.curve_server_key);
    s.set(zmq::sockopt::curve_publickey, cfg.curve_public);
    s.set(zmq::sockopt::curve_secretkey, cfg.curve_secret);
  }
}

}  // namespace

Result<zmq::socket_t> BindRouter(zmq::context_t& ctx, const std::string& endpoint,
                                 const SocketConfig& cfg) {
  try {
    zmq::socket_t s(ctx, zmq::socket_type::router);
    Configure(s, cfg);
    if (cfg.router_mandatory) s.set(zmq::sockopt::router_mandatory, 1);
    s.bind(endpoint);
    return s;
  } catch (const zmq::error_t& e) {
    return Unavailable("cannot bind " + endpoint + ": " + e.what());
  }
}

Result<zmq::socket_t> ConnectDealer(zmq::context_t& ctx, const std::string& endpoint,
                                    const SocketConfig& cfg) {
  try {
    zmq::socket_t s(ctx, zmq::socket_type::dealer);
    Configure(s, cfg);
    s.set(zmq::sockopt::reconnect_ivl, 100);
    s.set(zmq::sockopt::reconnect_ivl_max, 2000);
    s.connect(endpoint);
    return s;
  } catch (const zmq::error_t& e) {
    return InvalidArgument("cannot connect to " + endpoint + ": " + e.what());
  }
}

std::string LastEndpoint(zmq::socket_t& s) {
  try {
    return s.get(zmq::sockopt::last_endpoint);
  } catch (const zmq::error_t&) {
    return {};
  }
}

static void DrainRest(zmq::socket_t& s) {
  zmq::message_t junk;
  while (s.get(zmq::sockopt::rcvmore)) {
    if (!s.recv(junk, zmq::recv_flags::dontwait)) break;
  }
}

std::optional<RouterFrame> RecvRouter(zmq::socket_t& s, WireStats* stats) {
  try {
    while (true) {
      zmq::message_t id;
      if (!s.recv(id, zmq::recv_flags::dontwait)) return std::nullopt;
      if (!id.more()) {  // a lone identity frame cannot happen on a ROUTER; treat as bad
        if (stats) ++stats->bad_frames;
        continue;
      }
      RouterFrame f;
      f.identity.assign(static_cast<const char*>(id.data()), id.size());
      if (!s.recv(f.payload, zmq::recv_flags::dontwait)) {
        if (stats) ++stats->bad_frames;
        return std::nullopt;
      }
      if (f.payload.more()) {  // we only speak single-frame messages
        DrainRest(s);
        if (stats) ++stats->bad_frames;
        SC_LOG(Debug) << "dropped a multi-frame message";
        continue;
      }
      if (stats) {
        ++stats->frames_in;
        stats->bytes_in += f.payload.size();
      }
      return f;
    }
  } catch (const zmq::error_t& e) {
    if (e.num() != ETERM && e.num() != EINTR) SC_LOG(Warn) << "receive failed: " << e.what();
    return std::nullopt;
  }
}

bool SendRouter(zmq::socket_t& s, std::string_view identity, std::string_view payload,
                WireStats* stats, int* error) {
  if (error) *error = 0;
  try {
    if (!s.send(zmq::const_buffer(identity.data(), identity.size()),
                zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
      if (stats) ++stats->send_failures;
      if (error) *error = EAGAIN;
      return false;
    }
    if (!s.send(zmq::const_buffer(payload.data(), payload.size()), zmq::send_flags::dontwait)) {
      if (stats) ++stats->send_failures;
      if (error) *error = EAGAIN;
      return false;
    }
    if (stats) {
      ++stats->frames_out;
      stats->bytes_out += payload.size();
    }
    return true;
  } catch (const zmq::error_t& e) {
    // EHOSTUNREACH: ROUTER_MANDATORY says the peer is gone.
    if (stats) ++stats->send_failures;
    if (error) *error = e.num();
    return false;
  }
}

std::string UserId(zmq::message_t& msg) {
  try {
    const char* id = msg.gets("User-Id");
    return id ? std::string(id) : std::string();
  } catch (const zmq::error_t&) {
    return {};  // no such property: the connection was not authenticated
  }
}

int SourceFd(zmq::message_t& msg) {
  const int fd = zmq_msg_get(msg.handle(), ZMQ_SRCFD);
  return fd < 0 ? -1 : fd;
}

std::optional<zmq::message_t> RecvDealer(zmq::socket_t& s, WireStats* stats) {
  try {
    while (true) {
      zmq::message_t m;
      if (!s.recv(m, zmq::recv_flags::dontwait)) return std::nullopt;
      if (m.more()) {
        DrainRest(s);
        if (stats) ++stats->bad_frames;
        continue;
      }
      if (stats) {
        ++stats->frames_in;
        stats->bytes_in += m.size();
      }
      return m;
    }
  } catch (const zmq::error_t& e) {
    if (e.num() != ETERM && e.num() != EINTR) SC_LOG(Warn) << "receive failed: " << e.what();
    return std::nullopt;
  }
}

bool SendDealer(zmq::socket_t& s, std::string_view payload, WireStats* stats) {
  try {
    if (!s.send(zmq::const_buffer(payload.data(), payload.size()), zmq::send_flags::dontwait)) {
      if (stats) ++stats->send_failures;
      return false;
    }
    if (stats) {
      ++stats->frames_out;
      stats->bytes_out += payload.size();
    }
    return true;
  } catch (const zmq::error_t&) {
    if (stats) ++stats->send_failures;
    return false;
  }
}

bool Poll(std::vector<zmq::pollitem_t>& items, std::chrono::milliseconds timeout) {
  try {
    zmq::poll(items.data(), items.size(), timeout);
    return true;
  } catch (const zmq::error_t&) {
    return false;
  }
}

EventFd::EventFd() : fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (fd_ < 0) {
    std::perror("eventfd");
    std::abort();
  }
}
EventFd::~EventFd() { ::close(fd_); }
void EventFd::Wake() {
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(fd_, &one, sizeof(one));
}
void EventFd::Drain() {
  std::uint64_t v;
  [[maybe_unused]] auto n = ::read(fd_, &v, sizeof(v));
}

}  // namespace sparecycles::net
