#include "status_writer.hpp"

#include <unistd.h>

#include "sparecycles/core/clock.hpp"
#include "sparecycles/core/daemon.hpp"
#include "sparecycles/core/log.hpp"

namespace sparecycles::worker {

StatusWriter::StatusWriter(std::string state_dir, std::string peer_id)
    : state_dir_(std::move(state_dir)), peer_id_(std::move(peer_id)) {}

void StatusWriter::LoadPreviousTotals() {
  if (state_dir_.empty()) return;
  auto text = ReadFile(state_dir_ + "/status", 1 << 20);
  if (!text.ok()) return;
  if (auto s = ParseStatusFile(*text); s.ok() && s->peer_id == peer_id_) {
    base_cpu_seconds_ = s->cpu_seconds;
    base_units_done_ = s->units_done;
    resumed_work_ = s->resumed_work;
  }
}

void StatusWriter::Write(StatusSnapshot s) {
  s.peer_id = peer_id_;
  s.pid = static_cast<long>(getpid());
  s.units_done += base_units_done_;
  s.cpu_seconds += base_cpu_seconds_;
  s.resumed_work = resumed_work_;
  s.updated_at = WallSeconds();
  if (control_) control_->Publish(s);  // volunteer page
  if (state_dir_.empty()) return;
  if (Status st = WriteFileAtomic(state_dir_ + "/status", FormatStatusFile(s), /*sync=*/false);
      !st.ok()) {
    if (!failure_logged_) SC_LOG(Warn) << "cannot write the status file: " << st.ToString();
    failure_logged_ = true;
  }
}

}  // namespace sparecycles::worker
