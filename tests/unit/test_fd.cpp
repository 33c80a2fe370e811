// fd.hpp: the openat2(2)-based opens, here when openat2 is not there.
#include "fd.hpp"

#include <catch2/catch.hpp>

#include <cerrno>
#include <cstddef>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <string>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace ur;

namespace
{
// In a child with a seccomp filter that fails openat2 with ENOSYS (what systemd's
// RestrictSUIDSGID= installs), run `open` and return the error's errno and message.
template <class F> std::pair<int, std::string> without_openat2(F open)
{
    int p[2];
    REQUIRE(::pipe(p) == 0);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::close(p[0]);
        struct sock_filter code[] = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat2, 0, 1),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        struct sock_fprog prog = {static_cast<unsigned short>(sizeof code / sizeof code[0]), code};
        if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
            ::_exit(100);
        auto r = open();
        if (r) ::_exit(101);
        const std::string& m = r.error().message;
        if (::write(p[1], m.data(), m.size()) != static_cast<ssize_t>(m.size())) ::_exit(102);
        ::_exit(r.error().err);
    }
    ::close(p[1]);
    std::string msg;
    char buf[512];
    for (ssize_t n; (n = ::read(p[0], buf, sizeof buf)) > 0;)
        msg.append(buf, static_cast<size_t>(n));
    ::close(p[0]);
    int st = 0;
    REQUIRE(::waitpid(pid, &st, 0) == pid);
    REQUIRE(WIFEXITED(st));
    return {WEXITSTATUS(st), msg};
}
} // namespace

TEST_CASE("without openat2 the error says why and what to do")
{
    auto root = open_at(AT_FDCWD, "/", O_PATH | O_DIRECTORY);
    REQUIRE(root);
    const int rootfd = root->get();
    // Control: the same opens work where openat2 is allowed.
    REQUIRE(open_in_root(rootfd, "/etc", O_RDONLY | O_DIRECTORY));
    REQUIRE(open_beneath(rootfd, "etc", O_RDONLY | O_DIRECTORY));

    auto [err, msg] = without_openat2([&] { return open_in_root(rootfd, "/etc", O_RDONLY | O_DIRECTORY); });
    CHECK(err == ENOSYS);
    CHECK_THAT(msg, Catch::StartsWith("open '/etc': Function not implemented") &&
                        Catch::Contains("openat2(2) is not available") && Catch::Contains("RestrictSUIDSGID="));
    auto [err2, msg2] = without_openat2([&] { return open_beneath(rootfd, "etc", O_RDONLY | O_DIRECTORY); });
    CHECK(err2 == ENOSYS);
    CHECK_THAT(msg2, Catch::Contains("openat2(2) is not available"));
}
