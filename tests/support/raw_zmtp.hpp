// Test helper: a hostile ZMTP 3.0 client over a raw TCP socket to 127.0.0.1 (never any other
// address), speaking NULL or the CURVE client handshake (RFC 26: HELLO, WELCOME, INITIATE, READY;
// MESSAGE boxes), so a test can send what libzmq itself never sends: half a greeting, endless
// multipart messages. One object per connection; not thread-safe; the destructor closes it.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sodium.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace sparecycles::testing {

class RawZmtp {
 public:
  RawZmtp() = default;
  ~RawZmtp() { Close(); }
  RawZmtp(const RawZmtp&) = delete;
  RawZmtp& operator=(const RawZmtp&) = delete;
  RawZmtp(RawZmtp&& o) noexcept { *this = std::move(o); }
  RawZmtp& operator=(RawZmtp&& o) noexcept {
    std::swap(fd_, o.fd_);
    std::swap(curve_, o.curve_);
    std::swap(nonce_, o.nonce_);
    std::memcpy(precom_, o.precom_, sizeof(precom_));
    return *this;
  }

  /// The port of "tcp://127.0.0.1:PORT" (0 when the endpoint is not on 127.0.0.1).
  static std::uint16_t PortOf(const std::string& endpoint) {
    const std::string prefix = "tcp://127.0.0.1:";
    if (endpoint.rfind(prefix, 0) != 0) return 0;
    return static_cast<std::uint16_t>(std::stoi(endpoint.substr(prefix.size())));
  }

  /// Opens a TCP connection to 127.0.0.1:port.
  bool Connect(std::uint16_t port) {
    Close();
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return false;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      Close();
      return false;
    }
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return true;
  }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int fd() const { return fd_; }

  /// The first `bytes` of a greeting for `mechanism` (64 = all of it).
  bool SendGreeting(const char* mechanism, std::size_t bytes = 64) {
    std::string g(64, '\0');
    g[0] = '\xff';
    g[9] = '\x7f';
    g[10] = 3;  // ZMTP 3.0
    std::memcpy(&g[12], mechanism, std::strlen(mechanism));
    return SendAll(std::string_view(g).substr(0, bytes));
  }

  /// The NULL handshake as a DEALER.
  bool HandshakeNull(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    curve_ = false;
    std::string greeting;
    if (!SendGreeting("NULL") || !RecvExact(64, greeting, timeout)) return false;
    if (!SendCommand(std::string("\x05READY", 6) + Metadata())) return false;
    std::string cmd;
    return RecvFrame(cmd, timeout) && cmd.rfind(std::string("\x05READY", 6), 0) == 0;
  }

  /// The CURVE client handshake as a DEALER with a fresh long-term key, against the server's
  /// public key in Z85.
  bool HandshakeCurve(const std::string& server_z85,
                      std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    if (sodium_init() < 0 || server_z85.size() != 40) return false;
    std::uint8_t server[32], pub[32], sec[32], cn_pub[32], cn_sec[32];
    if (zmq_z85_decode(server, server_z85.c_str()) == nullptr) return false;
    crypto_box_keypair(pub, sec);
    crypto_box_keypair(cn_pub, cn_sec);
    curve_ = true;
    nonce_ = 1;
    std::string greeting;
    if (!SendGreeting("CURVE") || !RecvExact(64, greeting, timeout)) return false;
    // HELLO: version, padding, C', short nonce, Box[64 zeros](C'->S).
    std::string hello(200, '\0');
    std::memcpy(&hello[0], "\x05HELLO\x01\x00", 8);
    std::memcpy(&hello[80], cn_pub, 32);
    std::uint8_t n[24];
    Nonce(n, "CurveZMQHELLO---", nonce_);
    std::memcpy(&hello[112], n + 16, 8);
    const std::uint8_t zeros[64] = {};
    if (crypto_box_easy(reinterpret_cast<std::uint8_t*>(&hello[120]), zeros, 64, n, server,
                        cn_sec) != 0)
      return false;
    ++nonce_;
    std::string welcome;
    if (!SendCommand(hello) || !RecvFrame(welcome, timeout) || welcome.size() != 168 ||
        welcome.rfind("\x07WELCOME", 0) != 0)
      return false;
    std::uint8_t wn[24], wplain[128];
    std::memcpy(wn, "WELCOME-", 8);
    std::memcpy(wn + 8, &welcome[8], 16);
    if (crypto_box_open_easy(wplain, reinterpret_cast<const std::uint8_t*>(&welcome[24]), 144, wn,
                             server, cn_sec) != 0)
      return false;
    const std::uint8_t* cn_server = wplain;
    const std::uint8_t* cookie = wplain + 32;
    if (crypto_box_beforenm(precom_, cn_server, cn_sec) != 0) return false;
    // INITIATE: cookie, short nonce, Box[C + vouch + metadata](C'->S').
    std::uint8_t vn[24], vplain[64], vbox[80];
    std::memcpy(vn, "VOUCH---", 8);
    randombytes_buf(vn + 8, 16);
    std::memcpy(vplain, cn_pub, 32);
    std::memcpy(vplain + 32, server, 32);
    if (crypto_box_easy(vbox, vplain, 64, vn, cn_server, sec) != 0) return false;
    std::string plain(reinterpret_cast<const char*>(pub), 32);
    plain.append(reinterpret_cast<const char*>(vn + 8), 16);
    plain.append(reinterpret_cast<const char*>(vbox), 80);
    plain += Metadata();
    std::string initiate("\x08INITIATE", 9);
    initiate.append(reinterpret_cast<const char*>(cookie), 96);
    Nonce(n, "CurveZMQINITIATE", nonce_);
    initiate.append(reinterpret_cast<const char*>(n + 16), 8);
    const std::size_t off = initiate.size();
    initiate.resize(off + plain.size() + crypto_box_MACBYTES);
    if (crypto_box_easy_afternm(reinterpret_cast<std::uint8_t*>(&initiate[off]),
                                reinterpret_cast<const std::uint8_t*>(plain.data()), plain.size(),
                                n, precom_) != 0)
      return false;
    ++nonce_;
    std::string ready;
    return SendCommand(initiate) && RecvFrame(ready, timeout) &&
           ready.rfind(std::string("\x05READY", 6), 0) == 0;
  }

  /// Appends one message frame (MORE set when `more`) to `out`, encrypted after a CURVE
  /// handshake; send `out` with SendAll. Frames may be batched.
  void AppendFrame(std::string& out, std::string_view data, bool more) {
    if (!curve_) {
      AppendHeader(out, data.size(), more ? 0x01 : 0x00);
      out.append(data);
      return;
    }
    const std::size_t body = 8 + 8 + crypto_box_MACBYTES + 1 + data.size();
    AppendHeader(out, body, 0x00);
    std::uint8_t n[24];
    Nonce(n, "CurveZMQMESSAGEC", nonce_++);
    out.append("\x07MESSAGE", 8);
    out.append(reinterpret_cast<const char*>(n + 16), 8);
    scratch_.assign(1, more ? '\x01' : '\x00');
    scratch_.append(data);
    const std::size_t off = out.size();
    out.resize(off + scratch_.size() + crypto_box_MACBYTES);
    if (crypto_box_easy_afternm(reinterpret_cast<std::uint8_t*>(&out[off]),
                                reinterpret_cast<const std::uint8_t*>(scratch_.data()),
                                scratch_.size(), n, precom_) != 0)
      out.resize(off);  // cannot happen with a valid key; the frame is then left out
  }

  /// Writes all of `bytes`; false when the connection was closed or reset, or when nothing could
  /// be written for `stall` (the server stopped reading).
  bool SendAll(std::string_view bytes, std::chrono::milliseconds stall = std::chrono::seconds(5)) {
    while (!bytes.empty()) {
      pollfd p{fd_, POLLOUT, 0};
      if (::poll(&p, 1, static_cast<int>(stall.count())) <= 0) return false;
      if (p.revents & (POLLERR | POLLHUP)) return false;
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) continue;
        return false;
      }
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  /// True when the server closed the connection (EOF or reset) within `timeout`. Bytes the
  /// server sends meanwhile are read and dropped.
  bool WaitClosed(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    char buf[4096];
    do {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(std::clamp<std::int64_t>(left.count(), 0, 50))) <= 0)
        continue;
      const ssize_t n = ::recv(fd_, buf, sizeof(buf), MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return true;
    } while (std::chrono::steady_clock::now() < deadline);
    return false;
  }

 private:
  static std::string Metadata() {
    std::string m("\x0bSocket-Type", 12);
    m.append("\x00\x00\x00\x06", 4);
    m += "DEALER";
    return m;
  }
  static void Nonce(std::uint8_t out[24], const char* prefix, std::uint64_t n) {
    std::memcpy(out, prefix, 16);
    for (int i = 0; i < 8; ++i) out[16 + i] = static_cast<std::uint8_t>(n >> (56 - 8 * i));
  }
  static void AppendHeader(std::string& out, std::size_t size, unsigned flags) {
    if (size <= 255) {
      out.push_back(static_cast<char>(flags));
      out.push_back(static_cast<char>(size));
      return;
    }
    out.push_back(static_cast<char>(flags | 0x02));
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(size >> (56 - 8 * i)));
  }
  bool SendCommand(const std::string& body) {
    std::string out;
    AppendHeader(out, body.size(), 0x04);
    out += body;
    return SendAll(out);
  }
  bool RecvExact(std::size_t n, std::string& out, std::chrono::milliseconds timeout) {
    out.clear();
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    char buf[4096];
    while (out.size() < n) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const ssize_t got = ::recv(fd_, buf, std::min(sizeof(buf), n - out.size()), MSG_DONTWAIT);
      if (got == 0) return false;
      if (got < 0) {
        if (errno == EAGAIN || errno == EINTR) continue;
        return false;
      }
      out.append(buf, static_cast<std::size_t>(got));
    }
    return true;
  }
  bool RecvFrame(std::string& body, std::chrono::milliseconds timeout) {
    std::string h;
    if (!RecvExact(2, h, timeout)) return false;
    std::uint64_t size = static_cast<std::uint8_t>(h[1]);
    if (h[0] & 0x02) {
      std::string rest;
      if (!RecvExact(7, rest, timeout)) return false;
      size = 0;
      for (char c : h.substr(1) + rest) size = (size << 8) | static_cast<std::uint8_t>(c);
      if (size > (1u << 20)) return false;  // handshake commands are small
    }
    return RecvExact(static_cast<std::size_t>(size), body, timeout);
  }

  int fd_ = -1;
  bool curve_ = false;
  std::uint64_t nonce_ = 1;
  std::uint8_t precom_[crypto_box_BEFORENMBYTES] = {};
  std::string scratch_;
};

}  // namespace sparecycles::testing
