// Failpoints for crash-safety tests: UR_FAILPOINT="name" kills the process
// with SIGKILL the first time `name` is reached, "name:N" on the N-th time.
// Unset (always, in production) it costs one getenv at start-up.
#pragma once

namespace ur
{
void failpoint(const char* name);
}
