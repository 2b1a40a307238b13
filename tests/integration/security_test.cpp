// The security layer with real processes on 127.0.0.1 (docs/security.md): who may join the peer
// endpoint, that a peer is its key, that plaintext is refused, that a worker keeps to the
// coordinator key it pinned, and that the local mode needs no keys.
#include <doctest/doctest.h>
#include <signal.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>
#include <zmq.hpp>

#include "process.hpp"
#include "sparecycles/core/curve_keys.hpp"
#include "sparecycles/core/hash.hpp"
#include "sparecycles/core/protocol.hpp"
#include "sparecycles/core/transport.hpp"
#include "sparecycles/sdk/client.hpp"

using namespace sparecycles;
using namespace sparecycles::testing;
using namespace std::chrono_literals;

namespace {

Client ConnectTo(Cluster& c) {
  ClientOptions o;
  o.coordinator_key = c.coordinator_key();
  o.request_timeout = 5s;
  auto client = Client::Connect(c.client_endpoint(), o);
  REQUIRE(client.ok());
  return std::move(*client);
}

template <class F>
bool WaitUntil(F&& f, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (f()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return f();
}

std::size_t PeerCount(Client& c) {
  auto p = c.Peers();
  return p.ok() ? p->size() : 0;
}

// A raw CURVE DEALER to the peer endpoint with its own key, for frames a real worker never sends.
struct RawPeer {
  zmq::context_t ctx{1};
  std::optional<zmq::socket_t> sock;
  curve::KeyPair key = curve::Generate();
  RawPeer(const std::string& endpoint, const std::string& server_key) {
    net::SocketConfig sc;
    sc.curve_server_key = server_key;
    sc.curve_public = key.public_key.Z85();
    sc.curve_secret = key.SecretZ85();
    auto s = net::ConnectDealer(ctx, endpoint, sc);
    REQUIRE(s.ok());
    sock.emplace(std::move(*s));
  }
  template <class M>
  void Send(const M& m) {
    REQUIRE(net::SendDealer(*sock, proto::Encode(m), nullptr));
  }
  // The next frame's type and body, or nothing within `timeout`.
  std::optional<std::pair<proto::MsgType, std::string>> Next(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::vector<zmq::pollitem_t> items = {{sock->handle(), 0, ZMQ_POLLIN, 0}};
    while (std::chrono::steady_clock::now() < deadline) {
      net::Poll(items, 50ms);
      auto m = net::RecvDealer(*sock, nullptr);
      if (!m) continue;
      std::string_view body;
      auto type = proto::ParseHeader({static_cast<const char*>(m->data()), m->size()}, body);
      if (type.ok()) return std::make_pair(*type, std::string(body));
    }
    return std::nullopt;
  }
};

proto::Hello HelloAs(const std::string& peer_id) {
  proto::Hello h;
  h.peer_id = peer_id;
  h.hostname = "impostor";
  h.software = "security_test";
  h.cores = 4;
  h.tasks.push_back(proto::TaskInfo{"spin", 1, 1000.0});
  return h;
}

}  // namespace

TEST_CASE("an unknown worker key is refused in a cluster pool, and let in once listed + SIGHUP") {
  InitCrypto();
  TempDir keys("sparecycles-keys");
  const std::string list = keys / "workers";
  std::filesystem::create_directories(list);
  Cluster cluster(0, {"--worker-keys", list});
  REQUIRE(cluster.ok());
  Client client = ConnectTo(cluster);
  Process& w = cluster.AddWorker(1);
  const std::string pub = cluster.dir() / "worker0/curve/worker.pub";
  REQUIRE(WaitForFile(pub, 10s));
  // The worker keeps knocking; none of its handshakes gets through.
  std::this_thread::sleep_for(1500ms);
  CHECK(PeerCount(client) == 0);
  CHECK(w.running());
  CHECK(cluster.coordinator().Stderr().find("is not listed") != std::string::npos);

  std::filesystem::copy_file(pub, list + "/worker0.pub");
  cluster.coordinator().Signal(SIGHUP);
  const bool joined = WaitUntil([&] { return PeerCount(client) == 1; }, 15s);
  if (!joined) MESSAGE(cluster.Logs());
  REQUIRE(joined);
  auto peers = client.Peers();
  REQUIRE(peers.ok());
  CHECK(peers->at(0).peer_id == cluster.PeerId(0));
  auto key = curve::LoadPublicKey(pub);
  REQUIRE(key.ok());
  CHECK(cluster.PeerId(0) == curve::PeerIdFor(*key));

  // Taken off the list again: its session ends although its connection stays, and its Hellos on
  // that connection are refused.
  std::filesystem::remove(list + "/worker0.pub");
  cluster.coordinator().Signal(SIGHUP);
  const bool left = WaitUntil([&] { return PeerCount(client) == 0; }, 15s);
  if (!left) MESSAGE(cluster.Logs());
  CHECK(left);
  std::this_thread::sleep_for(1s);  // time for the worker's Hellos to be refused
  CHECK(PeerCount(client) == 0);
  CHECK(cluster.coordinator().Stderr().find("removed from --worker-keys") != std::string::npos);
  CHECK(w.Stderr().find("no longer listed") != std::string::npos);
}

TEST_CASE("a Hello that reuses another peer's id is refused and gets none of its leases") {
  InitCrypto();
  Cluster cluster(1);
  REQUIRE(cluster.ok());
  Client client = ConnectTo(cluster);
  REQUIRE(WaitUntil([&] { return PeerCount(client) == 1; }, 15s));
  // The victim holds leases of long units.
  JobSpec spec("spin");
  spec.Set("units", "4").Set("ms", "20000");
  spec.units = 4;
  auto job = client.Submit(spec);
  REQUIRE(job.ok());
  REQUIRE(WaitUntil(
      [&] {
        auto s = client.Status(job->id());
        return s.ok() && s->units_running > 0;
      },
      15s));
  const std::string victim = cluster.PeerId(0);

  RawPeer impostor(cluster.peer_endpoint(), cluster.coordinator_key());
  impostor.Send(HelloAs(victim));
  auto reply = impostor.Next(10s);
  REQUIRE(reply);
  REQUIRE(reply->first == proto::MsgType::kReject);
  proto::Reject r;
  REQUIRE(proto::Decode(reply->second, r).ok());
  CHECK(r.code == proto::RejectCode::kBadMessage);
  CHECK(r.message.find("not the one of your key") != std::string::npos);
  // Asking for work or reporting anyway: "say Hello first", never a lease.
  proto::RequestWork rw;
  rw.count = 4;
  impostor.Send(rw);
  for (auto m = impostor.Next(1500ms); m; m = impostor.Next(500ms)) {
    CHECK(m->first != proto::MsgType::kAssign);
    CHECK(m->first != proto::MsgType::kWelcome);
  }
  // The victim is still the only peer and still runs its units.
  auto peers = client.Peers();
  REQUIRE(peers.ok());
  REQUIRE(peers->size() == 1);
  CHECK(peers->at(0).peer_id == victim);
  CHECK(peers->at(0).running > 0);
  // The same impostor under its own key's id is simply another peer.
  impostor.Send(HelloAs(curve::PeerIdFor(impostor.key.public_key)));
  auto welcome = impostor.Next(10s);
  REQUIRE(welcome);
  CHECK(welcome->first == proto::MsgType::kWelcome);
  CHECK(client.Cancel(job->id()).ok());
}

TEST_CASE("a plaintext client or worker is refused; a client with the wrong key gets no answer") {
  InitCrypto();
  Cluster cluster(0);
  REQUIRE(cluster.ok());
  ClientOptions plain;
  plain.curve = false;
  plain.request_timeout = 1500ms;
  auto p = Client::Connect(cluster.client_endpoint(), plain);
  REQUIRE(p.ok());
  auto jobs = p->Jobs();
  CHECK_FALSE(jobs.ok());

  ClientOptions wrong;
  wrong.coordinator_key = curve::Generate().public_key.Z85();
  wrong.request_timeout = 1500ms;
  auto w = Client::Connect(cluster.client_endpoint(), wrong);
  REQUIRE(w.ok());
  CHECK_FALSE(w->Jobs().ok());

  // A plaintext worker never joins.
  cluster.AddWorker(1, {"--curve", "off"});
  Client good = ConnectTo(cluster);
  CHECK(good.Jobs().ok());
  std::this_thread::sleep_for(1500ms);
  CHECK(PeerCount(good) == 0);
}

TEST_CASE("client keys have roles and quotas: who may see, cancel and submit what") {
  InitCrypto();
  TempDir keys("sparecycles-client-keys");
  auto make = [&](const std::string& name) {
    const curve::KeyPair pair = curve::Generate();
    REQUIRE(curve::SaveKeyPair(keys / (name + ".key"), pair, name).ok());
    return pair;
  };
  const auto alice = make("alice"), bob = make("bob"), carol = make("carol"),
             reader = make("reader"), admin = make("admin");
  make("mallory");  // never listed
  const std::string list = keys / "clients";
  {
    std::ofstream out(list);
    out << "# key role [quotas]\n"
        << alice.public_key.Z85() << " submit\n"
        << bob.public_key.Z85() << " submit jobs=1\n"
        << carol.public_key.Hex() << " submit units=3\n"
        << reader.public_key.Z85() << " read\n"
        << admin.public_key.Z85() << " admin\n";
  }
  Cluster cluster(1, {"--client-keys", list});
  REQUIRE(cluster.ok());
  auto as = [&](const std::string& name) {
    ClientOptions o;
    o.coordinator_key = cluster.coordinator_key();
    o.key_file = keys / (name + ".key");
    o.request_timeout = 5s;
    auto c = Client::Connect(cluster.client_endpoint(), o);
    REQUIRE(c.ok());
    return std::move(*c);
  };
  Client a = as("alice"), b = as("bob"), c = as("carol"), r = as("reader"), root = as("admin");
  JobSpec slow("spin");
  slow.Set("ms", "20000");
  slow.units = 2;

  // An unlisted key gets no answer at all (the handshake is refused).
  {
    ClientOptions o;
    o.coordinator_key = cluster.coordinator_key();
    o.key_file = keys / "mallory.key";
    o.request_timeout = 1500ms;
    auto m = Client::Connect(cluster.client_endpoint(), o);
    REQUIRE(m.ok());
    CHECK_FALSE(m->Jobs().ok());
    CHECK_FALSE(m->Submit(slow).ok());
  }

  auto job_a = a.Submit(slow);
  REQUIRE(job_a.ok());
  const std::uint64_t ja = job_a->id();
  // Bob (submit) may neither cancel nor see Alice's job, and his list leaves it out.
  const Status cancel = b.Cancel(ja);
  CHECK(cancel.code() == StatusCode::kPermissionDenied);
  CHECK(cancel.message().find("admin") != std::string::npos);
  CHECK(b.Status(ja).status().code() == StatusCode::kPermissionDenied);
  auto bobs = b.Jobs();
  REQUIRE(bobs.ok());
  CHECK(bobs->empty());
  CHECK(b.Peers().status().code() == StatusCode::kPermissionDenied);
  // The reader sees it, and the peers, but can neither cancel nor submit.
  auto seen = r.Status(ja);
  REQUIRE(seen.ok());
  CHECK_FALSE(IsFinal(seen->state));
  auto all = r.Jobs();
  REQUIRE(all.ok());
  CHECK(all->size() == 1);
  CHECK(r.Peers().ok());
  CHECK(r.Cancel(ja).code() == StatusCode::kPermissionDenied);
  CHECK(r.Submit(slow).status().code() == StatusCode::kPermissionDenied);
  // After all that, Alice's job still runs; Alice herself may cancel it.
  auto still = a.Status(ja);
  REQUIRE(still.ok());
  CHECK_FALSE(IsFinal(still->state));
  CHECK(a.Cancel(ja).ok());
  CHECK(a.Status(ja)->state == JobState::kCancelled);

  // Quotas: Bob may have one unfinished job; Carol three unsettled units.
  auto b1 = b.Submit(slow);
  REQUIRE(b1.ok());
  auto b2 = b.Submit(slow);
  CHECK(b2.status().code() == StatusCode::kResourceExhausted);
  CHECK(b2.status().message().find("unfinished jobs") != std::string::npos);
  JobSpec four = slow;
  four.units = 4;
  auto c4 = c.Submit(four);
  CHECK(c4.status().code() == StatusCode::kResourceExhausted);
  CHECK(c4.status().message().find("unsettled units") != std::string::npos);
  auto c2 = c.Submit(slow);
  CHECK(c2.ok());
  // The admin cancels anyone's job, and that frees Bob's quota.
  CHECK(root.Cancel(b1->id()).ok());
  auto b3 = b.Submit(slow);
  CHECK(b3.ok());
  auto everything = root.Jobs();
  REQUIRE(everything.ok());
  CHECK(everything->size() == 4);  // Alice's, Bob's two, Carol's; the refused ones never existed
  for (const auto& j : *everything)
    if (!IsFinal(j.state)) CHECK(root.Cancel(j.id).ok());
  CHECK(cluster.coordinator().Stderr().find("is not listed") != std::string::npos);

  // Bob taken off the list (SIGHUP): his open connection may do nothing more.
  {
    std::ofstream out(list);
    out << alice.public_key.Z85() << " submit\n" << admin.public_key.Z85() << " admin\n";
  }
  cluster.coordinator().Signal(SIGHUP);
  const bool revoked =
      WaitUntil([&] { return b.Jobs().status().code() == StatusCode::kPermissionDenied; }, 10s);
  CHECK(revoked);
  CHECK(b.Submit(slow).status().code() == StatusCode::kPermissionDenied);
  CHECK(a.Jobs().ok());
}

TEST_CASE("a worker that pinned a coordinator key refuses an impostor coordinator") {
  InitCrypto();
  Cluster real(1);
  REQUIRE(real.ok());
  Client client = ConnectTo(real);
  REQUIRE(WaitUntil([&] { return PeerCount(client) == 1; }, 15s));
  const std::string state = real.dir() / "worker0";
  auto pinned = curve::LoadPublicKey(state + "/coordinator.pub");
  REQUIRE(pinned.ok());
  CHECK(pinned->Z85() == real.coordinator_key());
  real.worker(0).Signal(SIGTERM);
  REQUIRE(real.worker(0).Wait(15s));

  Cluster impostor(0);  // another coordinator, another key, published for its own ports
  REQUIRE(impostor.ok());
  REQUIRE(impostor.coordinator_key() != real.coordinator_key());
  for (const std::vector<std::string>& extra :
       {std::vector<std::string>{}, {"--coordinator-key", impostor.coordinator_key()}}) {
    std::vector<std::string> argv = {SPARECYCLES_WORKER_BIN,
                                     "--coordinator",
                                     impostor.peer_endpoint(),
                                     "--state-dir",
                                     state,
                                     "--calibrate",
                                     "5ms"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    Process refused(argv, impostor.dir() / "refused");
    const auto code = refused.Wait(30s);
    REQUIRE(code);
    CHECK(*code != 0);
    const std::string out = refused.Stderr();
    CHECK(out.find("not the key pinned in") != std::string::npos);
    CHECK(out.find(impostor.coordinator_key()) != std::string::npos);
  }
  // The pin itself is untouched.
  auto after = curve::LoadPublicKey(state + "/coordinator.pub");
  REQUIRE(after.ok());
  CHECK(*after == *pinned);
}

TEST_CASE("the local mode needs no keys anywhere") {
  TempDir home("sparecycles-home");
  // No config directory, no published keys: Client::Local() makes its own.
  ::setenv("HOME", home.path().c_str(), 1);
  ::setenv("XDG_CONFIG_HOME", (home / "config").c_str(), 1);
  ::setenv("XDG_RUNTIME_DIR", (home / "run").c_str(), 1);
  LocalOptions lo;
  lo.cores = 1;
  lo.tasks = {"primes"};
  auto client = Client::Local(lo);
  REQUIRE(client.ok());
  JobSpec spec("primes");
  spec.Set("from", "0").Set("to", "100000");
  auto job = client->Submit(spec);
  REQUIRE(job.ok());
  auto r = job->Wait(60s);
  REQUIRE(r.ok());
  CHECK(r->info.state == JobState::kDone);
  CHECK(r->summary.find("9592") != std::string::npos);
}
