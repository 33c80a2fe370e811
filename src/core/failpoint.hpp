// Failpoints for crash-safety tests: UR_FAILPOINT="name" kills the process
// with SIGKILL the first time `name` is reached, "name:N" on the N-th time.
// With UR_FAILPOINT_ACTION=stop it stops itself (SIGSTOP) there instead, so
// a test can change the world at that exact point and SIGCONT it.
// Unset (always, in production) it costs one getenv at start-up.
#pragma once

namespace ur
{
void failpoint(const char* name);
}
