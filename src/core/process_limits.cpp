#include "process_limits.hpp"

#include <sys/resource.h>

namespace ur
{

void raise_fd_limit()
{
    struct rlimit rl;
    if (::getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max) return;
    rl.rlim_cur = rl.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &rl);
}

} // namespace ur
