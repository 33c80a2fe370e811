// Resource limits the binaries set for themselves at start.
#pragma once

namespace ur
{

// Raise the soft limit on open descriptors to the hard limit. A walk holds about
// two or three descriptors per directory level (kMaxTreeDepth levels deep), and copy
// threads hold more; the usual soft limit of 1,024 is for select(), which we do
// not use. Best effort: a refusal leaves the limit as it was (a deep tree then
// fails with EMFILE, named in the error).
void raise_fd_limit();

} // namespace ur
