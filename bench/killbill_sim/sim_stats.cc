#include "bench/killbill_sim/sim_stats.h"

namespace bg::sim {

void SimCounters::Healthcheck(bool healthy,
                              const std::string& growing_message) {
  ++healthcheck_calls_;
  if (!healthy) ++healthcheck_unhealthy_;
  last_health_message_ = growing_message;
}

void SimCounters::Report(SimStats* stats) const {
  stats->accounts_created = accounts_created_;
  stats->conflicts_409 = conflicts_409_;
  stats->tag_calls_ok = tag_calls_ok_;
  stats->aborted_calls = aborted_calls_;
  stats->healthcheck_calls = healthcheck_calls_;
  stats->healthcheck_unhealthy_total = healthcheck_unhealthy_;
  stats->healthcheck_last_message = last_health_message_;
  stats->requests = requests_;
}

}  // namespace bg::sim
