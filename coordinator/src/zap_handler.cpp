#include "zap_handler.hpp"

#include <array>
#include <vector>

#include "sparecycles/core/log.hpp"

namespace sparecycles::coordinator {
namespace {

// A key list as hex key -> value_of(line). A bad line is an error naming it, so a typo in a role
// or a quota never silently gives a key less or more.
template <class V, class F>
Result<std::optional<std::map<std::string, V>>> LoadList(const std::string& path, F value_of) {
  if (path.empty()) return std::optional<std::map<std::string, V>>();
  auto keys = curve::LoadKeyList(path);
  if (!keys.ok()) return keys.status();
  std::map<std::string, V> out;
  for (const auto& k : *keys) {
    Result<V> value = value_of(k);
    if (!value.ok()) return InvalidArgument(k.source + ": " + value.status().message());
    out[k.key.Hex()] = std::move(*value);
  }
  return std::optional<std::map<std::string, V>>(std::move(out));
}

}  // namespace

Status ZapHandler::Start(zmq::context_t& ctx) {
  SC_RETURN_IF_ERROR(Reload());
  try {
    sock_.emplace(ctx, zmq::socket_type::rep);
    sock_->set(zmq::sockopt::linger, 0);
    sock_->bind("inproc://zeromq.zap.01");
  } catch (const zmq::error_t& e) {
    return Internal(std::string("cannot bind the ZAP handler: ") + e.what());
  }
  return OkStatus();
}

Status ZapHandler::Reload() {
  auto workers = LoadList<std::string>(
      config_.worker_keys, [](const curve::ListedKey& k) -> Result<std::string> { return k.role; });
  if (!workers.ok()) return InvalidArgument("--worker-keys: " + workers.status().message());
  auto clients = LoadList<ClientGrant>(
      config_.client_keys, [](const curve::ListedKey& k) { return ParseClientGrant(k.role); });
  if (!clients.ok()) return InvalidArgument("--client-keys: " + clients.status().message());
  workers_ = std::move(*workers);
  clients_ = std::move(*clients);
  if (workers_)
    SC_LOG(Info) << "peer endpoint: " << workers_->size() << " worker key(s) allowed, from "
                 << config_.worker_keys;
  if (clients_)
    SC_LOG(Info) << "client endpoint: " << clients_->size() << " client key(s) allowed, from "
                 << config_.client_keys;
  return OkStatus();
}

std::optional<ClientGrant> ZapHandler::ListedClient(const std::string& user_id) const {
  if (config_.self && user_id == config_.self->Hex()) return ClientGrant{kRoleAdmin, {}, {}, {}};
  if (!clients_) return std::nullopt;
  auto it = clients_->find(user_id);
  if (it == clients_->end()) return std::nullopt;
  return it->second;
}

std::pair<bool, std::string> ZapHandler::Decide(const std::string& domain,
                                                const std::string& mechanism,
                                                const std::string& credentials,
                                                const std::string& address) {
  const bool peers = domain == kPeerDomain;
  if (!peers && domain != kClientDomain) return {false, "unknown domain"};
  // Only CURVE: a NULL or PLAIN client never gets here on a CURVE server, but say so anyway.
  if (mechanism != "CURVE" || credentials.size() != curve::kKeyBytes) {
    ++stats_.bad_requests;
    return {false, "CURVE required"};
  }
  curve::PublicKey key;
  std::copy(credentials.begin(), credentials.end(), key.bytes.begin());
  const std::string hex = key.Hex();
  const bool listed = peers ? WorkerAllowed(hex) : !clients_ || clients_->count(hex) != 0;
  const bool self = !peers && config_.self && key == *config_.self;
  if (!listed && !self) {
    ++(peers ? stats_.peers_refused : stats_.clients_refused);
    if (logged_++ < 100 || logged_ % 1000 == 0)
      SC_LOG(Warn) << (peers ? "worker" : "client") << " key " << key.Z85() << " from " << address
                   << " is not listed in " << (peers ? config_.worker_keys : config_.client_keys)
                   << ": refused";
    return {false, "key not allowed"};
  }
  ++(peers ? stats_.peers_accepted : stats_.clients_accepted);
  return {true, hex};
}

void ZapHandler::Drain() {
  // Bounded: a flood of handshakes cannot hold the loop for more than this many answers a turn.
  for (int n = 0; n < 256; ++n) {
    std::vector<zmq::message_t> frames;
    try {
      while (true) {
        zmq::message_t m;
        if (!sock_->recv(m, frames.empty() ? zmq::recv_flags::dontwait : zmq::recv_flags::none))
          break;
        const bool more = m.more();
        if (frames.size() < 16) frames.push_back(std::move(m));
        if (!more) break;
      }
    } catch (const zmq::error_t&) {
      return;
    }
    if (frames.empty()) return;
    auto text = [&](std::size_t i) {
      return i < frames.size() ? frames[i].to_string() : std::string();
    };
    // RFC 27: version, request id, domain, address, routing id, mechanism, credentials...
    std::pair<bool, std::string> verdict{false, "malformed ZAP request"};
    if (frames.size() >= 6 && text(0) == "1.0")
      verdict = Decide(text(2), text(5), text(6), text(3));
    else
      ++stats_.bad_requests;
    const std::array<std::string, 6> reply = {"1.0",
                                              text(1),
                                              verdict.first ? "200" : "400",
                                              verdict.first ? "OK" : verdict.second,
                                              verdict.first ? verdict.second : "",
                                              ""};
    try {
      for (std::size_t i = 0; i < reply.size(); ++i)
        sock_->send(zmq::buffer(reply[i]),
                    i + 1 < reply.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
    } catch (const zmq::error_t& e) {
      SC_LOG(Warn) << "ZAP reply failed: " << e.what();
      return;
    }
  }
}

}  // namespace sparecycles::coordinator
