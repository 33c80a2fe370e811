// A shell command run to its end with its output in files, for tests that check
// what an administrator would see of a command: exit status, signal, stdout, stderr.
#pragma once

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

namespace ur::test
{

// The whole file; empty when it cannot be read.
inline std::string slurp(const std::string& path)
{
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

struct ShellRun {
    int exit_code = -1; // -1: killed by `signal`
    int signal = 0;
    std::string out, err;
    // stdout as JSON; null when it is none.
    nlohmann::json json() const
    {
        try {
            return nlohmann::json::parse(out);
        } catch (...) {
            return nullptr;
        }
    }
};

// `sh -c "CMD >BASE/out 2>BASE/err"`. Begin `cmd` with "exec" (after any
// VAR=value) so that no shell stays in between to turn a signal into an exit code.
inline ShellRun run_shell(const std::string& cmd, const std::string& base)
{
    const std::string full = cmd + " >" + base + "/out 2>" + base + "/err";
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", full.c_str(), nullptr);
        _exit(127);
    }
    int st = 0;
    REQUIRE(waitpid(pid, &st, 0) == pid);
    ShellRun r;
    if (WIFEXITED(st)) r.exit_code = WEXITSTATUS(st);
    if (WIFSIGNALED(st)) r.signal = WTERMSIG(st);
    r.out = slurp(base + "/out");
    r.err = slurp(base + "/err");
    return r;
}

} // namespace ur::test
