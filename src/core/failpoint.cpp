#include "failpoint.hpp"

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unistd.h>

namespace ur
{

namespace
{
struct Spec {
    std::string name;
    long at = 1;
    bool active = false;
    bool stop = false; // SIGSTOP instead of SIGKILL
};
const Spec& spec()
{
    static const Spec s = [] {
        Spec r;
        const char* e = std::getenv("UR_FAILPOINT");
        if (!e || !*e) return r;
        r.active = true;
        r.name = e;
        const char* a = std::getenv("UR_FAILPOINT_ACTION");
        r.stop = a && std::strcmp(a, "stop") == 0;
        if (auto colon = r.name.rfind(':'); colon != std::string::npos) {
            r.at = std::strtol(r.name.c_str() + colon + 1, nullptr, 10);
            r.name.resize(colon);
        }
        return r;
    }();
    return s;
}
std::atomic<long> hits{0};
} // namespace

void failpoint(const char* name)
{
    const Spec& s = spec();
    if (!s.active || s.name != name) return;
    long n = hits.fetch_add(1) + 1;
    if (s.stop) {
        if (n == s.at) ::raise(SIGSTOP); // once: the test continues us with SIGCONT
        return;
    }
    if (n >= s.at) {
        static const char msg[] = "upgrade-recovery: failpoint reached, killing self\n";
        (void)!::write(2, msg, sizeof msg - 1);
        ::kill(::getpid(), SIGKILL);
    }
}

} // namespace ur
