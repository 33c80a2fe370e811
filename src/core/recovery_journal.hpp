// The recovery journal on the partition (<mount>/recovery/). Every recovery step is
// recorded before it starts and when it ends, written durably, so --resume
// continues after a crash or power cut.
#pragma once

#include "error.hpp"

namespace ur {

struct Store;

// True while a recovery has started and not finished (complete or abandoned):
// backups are refused then (RecoveryInProgress).
Result<bool> recovery_in_progress(const Store& store);

} // namespace ur
