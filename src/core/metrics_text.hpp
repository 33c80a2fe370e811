// The store's state as Prometheus metrics in the text exposition format, for
// node_exporter's textfile collector (W20: something a hub or an alert rule reads,
// besides the journal and last-backup.json). `upgrade-recovery metrics` prints or
// writes it; upgrade-recovery-metrics.timer refreshes the file.
#pragma once

#include "error.hpp"
#include "store.hpp"
#include "store_status.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ur
{

// `status` null: the store could not be opened (upgrade_recovery_store_up 0 and
// nothing else: every other value would be a guess).
std::string metrics_text(const StoreStatus* status, const std::optional<StoreUsage>& usage);

// Seconds since the epoch of an RFC 3339 UTC time as this program writes them
// ("2024-05-01T12:00:00Z", optionally with a fraction); nullopt for anything else.
std::optional<double> rfc3339_to_epoch(std::string_view s);

} // namespace ur
