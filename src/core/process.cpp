#include "process.hpp"

#include "fd.hpp"
#include "text.hpp"

#include <csignal>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace ur
{

namespace
{

using Clock = std::chrono::steady_clock;

// How long a process group gets between SIGTERM and SIGKILL, and how long we
// keep reading pipes that leftover grandchildren still hold after the command exited.
constexpr auto kKillGrace = std::chrono::milliseconds(2000);
constexpr auto kDrainGrace = std::chrono::milliseconds(2000);
// Captured output beyond this is discarded (a runaway command must not exhaust memory).
constexpr size_t kMaxCapture = 256u << 20;

// argv as a shell-like string for messages, bounded so a huge argv does not flood the log.
std::string describe(const std::vector<std::string>& argv)
{
    std::string s = sh_command(argv);
    if (s.size() > 300) {
        s.resize(300);
        s += "...";
    }
    return s;
}

// Pipe ends are moved above 2 so the child's dup2 onto 0/1/2 can never clobber another end.
Result<std::pair<UniqueFd, UniqueFd>> make_pipe()
{
    int p[2];
    if (::pipe2(p, O_CLOEXEC) < 0) return fail_errno("pipe");
    UniqueFd ends[2] = {UniqueFd(p[0]), UniqueFd(p[1])};
    for (auto& e : ends) {
        if (e.get() > 2) continue;
        int n = ::fcntl(e.get(), F_DUPFD_CLOEXEC, 3);
        if (n < 0) return fail_errno("dup pipe");
        e.reset(n);
    }
    return std::make_pair(std::move(ends[0]), std::move(ends[1]));
}

// PATH lookup against the child's environment, so an env_set PATH takes effect
// and "not found" is reported before anything is spawned.
Result<std::string> resolve_exe(const std::string& name, const std::string& path_var)
{
    if (name.find('/') != std::string::npos) return name;
    std::string path = path_var.empty() ? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" : path_var;
    size_t pos = 0;
    while (pos <= path.size()) {
        size_t colon = path.find(':', pos);
        if (colon == std::string::npos) colon = path.size();
        std::string dir = path.substr(pos, colon - pos);
        pos = colon + 1;
        if (dir.empty()) dir = ".";
        std::string cand = dir + "/" + name;
        struct stat st;
        if (::stat(cand.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(cand.c_str(), X_OK) == 0) return cand;
    }
    return fail(ErrorKind::NotFound, "command not found: " + name);
}

// Owns the spawned child until it is reaped: an early return kills the whole
// group and waits, so no child outlives the call.
class Child
{
  public:
    explicit Child(pid_t pid) : pid_(pid) {}
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;
    ~Child()
    {
        if (pid_ > 0 && !reaped_) {
            ::kill(-pid_, SIGKILL);
            int st;
            while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
            }
        }
    }
    pid_t pid() const { return pid_; }
    bool reaped() const { return reaped_; }
    int status() const { return status_; }
    // Non-blocking reap; true once the child has exited.
    bool poll_exit()
    {
        if (reaped_) return true;
        int st;
        pid_t r = ::waitpid(pid_, &st, WNOHANG);
        if (r == pid_) {
            reaped_ = true;
            status_ = st;
        }
        return reaped_;
    }
    // The group id equals the child's pid (setpgid(0, 0) at spawn). After the
    // child is reaped the id stays reserved while any member lives, so this
    // never hits an unrelated group.
    void signal_group(int sig) const { ::kill(-pid_, sig); }

  private:
    pid_t pid_;
    bool reaped_ = false;
    int status_ = 0;
};

// Writing stdin to a child that exited raises SIGPIPE; block it for this
// thread only (no process-wide disposition change) and swallow a pending one.
class SigpipeGuard
{
  public:
    SigpipeGuard()
    {
        sigset_t s;
        sigemptyset(&s);
        sigaddset(&s, SIGPIPE);
        sigset_t pending;
        sigpending(&pending);
        was_pending_ = sigismember(&pending, SIGPIPE) == 1;
        pthread_sigmask(SIG_BLOCK, &s, &old_);
    }
    ~SigpipeGuard()
    {
        if (!was_pending_) {
            sigset_t s;
            sigemptyset(&s);
            sigaddset(&s, SIGPIPE);
            struct timespec zero = {0, 0};
            while (sigtimedwait(&s, nullptr, &zero) == SIGPIPE) {
            }
        }
        pthread_sigmask(SIG_SETMASK, &old_, nullptr);
    }
    SigpipeGuard(const SigpipeGuard&) = delete;
    SigpipeGuard& operator=(const SigpipeGuard&) = delete;

  private:
    sigset_t old_;
    bool was_pending_ = false;
};

class SpawnAttr
{
  public:
    SpawnAttr() { ok_ = posix_spawnattr_init(&a_) == 0; }
    ~SpawnAttr()
    {
        if (ok_) posix_spawnattr_destroy(&a_);
    }
    SpawnAttr(const SpawnAttr&) = delete;
    SpawnAttr& operator=(const SpawnAttr&) = delete;
    posix_spawnattr_t* get() { return &a_; }
    bool ok() const { return ok_; }

  private:
    posix_spawnattr_t a_;
    bool ok_ = false;
};

class SpawnActions
{
  public:
    SpawnActions() { ok_ = posix_spawn_file_actions_init(&a_) == 0; }
    ~SpawnActions()
    {
        if (ok_) posix_spawn_file_actions_destroy(&a_);
    }
    SpawnActions(const SpawnActions&) = delete;
    SpawnActions& operator=(const SpawnActions&) = delete;
    posix_spawn_file_actions_t* get() { return &a_; }
    bool ok() const { return ok_; }

  private:
    posix_spawn_file_actions_t a_;
    bool ok_ = false;
};

std::string tail_lines(const std::string& text, size_t max_lines, size_t max_chars)
{
    std::string t = text;
    while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' '))
        t.pop_back();
    size_t pos = t.size();
    size_t lines = 0;
    while (pos > 0 && lines < max_lines) {
        size_t nl = t.rfind('\n', pos - 1);
        if (nl == std::string::npos) {
            pos = 0;
            break;
        }
        pos = nl;
        ++lines;
        if (lines == max_lines) {
            ++pos;
            break;
        }
    }
    std::string out = t.substr(pos);
    if (out.size() > max_chars) out = "..." + out.substr(out.size() - max_chars);
    return out;
}

struct Reader {
    UniqueFd fd;
    std::string* sink = nullptr;
    bool truncated = false;

    // Returns false at EOF or on an error (the pipe is closed then).
    bool read_some()
    {
        char buf[65536];
        for (;;) {
            ssize_t n = ::read(fd.get(), buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
            if (n <= 0) {
                fd.reset();
                return false;
            }
            size_t room = sink->size() < kMaxCapture ? kMaxCapture - sink->size() : 0;
            size_t take = std::min(room, static_cast<size_t>(n));
            sink->append(buf, take);
            if (take < static_cast<size_t>(n)) truncated = true;
            return true;
        }
    }
};

Result<> set_nonblock(int fd)
{
    int fl = ::fcntl(fd, F_GETFL);
    if (fl < 0 || ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return fail_errno("fcntl O_NONBLOCK");
    return {};
}

} // namespace

Result<CommandResult> run_command(const Command& cmd, const CancelToken* cancel)
{
    if (cmd.argv.empty()) return fail(ErrorKind::InvalidArgs, "run_command: empty argv");
    const std::string what = describe(cmd.argv);

    // Environment: inherited, then the overrides.
    std::map<std::string, std::string> envmap;
    for (char** e = environ; e && *e; ++e) {
        std::string kv = *e;
        size_t eq = kv.find('=');
        if (eq == std::string::npos) continue;
        envmap[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    for (const auto& [k, v] : cmd.env_set)
        envmap[k] = v;
    std::vector<std::string> envs;
    envs.reserve(envmap.size());
    for (const auto& [k, v] : envmap)
        envs.push_back(k + "=" + v);
    std::vector<char*> envp;
    for (auto& s : envs)
        envp.push_back(s.data());
    envp.push_back(nullptr);

    auto path_it = envmap.find("PATH");
    auto exe = resolve_exe(cmd.argv[0], path_it == envmap.end() ? std::string() : path_it->second);
    if (!exe) return std::unexpected(std::move(exe.error()).context("run '" + what + "'"));

    std::vector<std::string> args = cmd.argv;
    std::vector<char*> argvp;
    for (auto& s : args)
        argvp.push_back(s.data());
    argvp.push_back(nullptr);

    SpawnActions fa;
    SpawnAttr attr;
    if (!fa.ok() || !attr.ok()) return fail(ErrorKind::Internal, "posix_spawn init failed");

    UniqueFd in_wr, out_rd, err_rd;
    UniqueFd in_rd, out_wr, err_wr; // child ends, closed in the parent after the spawn
    if (cmd.stdin_data) {
        auto p = make_pipe();
        if (!p) return std::unexpected(p.error());
        in_rd = std::move(p->first);
        in_wr = std::move(p->second);
        posix_spawn_file_actions_adddup2(fa.get(), in_rd.get(), 0);
    } else {
        // Never let a command wait for a terminal or the daemon's stdin.
        posix_spawn_file_actions_addopen(fa.get(), 0, "/dev/null", O_RDONLY, 0);
    }
    if (cmd.capture_stdout) {
        auto p = make_pipe();
        if (!p) return std::unexpected(p.error());
        out_rd = std::move(p->first);
        out_wr = std::move(p->second);
        posix_spawn_file_actions_adddup2(fa.get(), out_wr.get(), 1);
    }
    if (cmd.capture_stderr) {
        auto p = make_pipe();
        if (!p) return std::unexpected(p.error());
        err_rd = std::move(p->first);
        err_wr = std::move(p->second);
        posix_spawn_file_actions_adddup2(fa.get(), err_wr.get(), 2);
    }
    if (cmd.cwd) posix_spawn_file_actions_addchdir_np(fa.get(), cmd.cwd->c_str());
    // Nothing else of ours leaks into the command, whatever flags other code used.
    posix_spawn_file_actions_addclosefrom_np(fa.get(), 3);

    // Own process group (so the deadline kills grandchildren too), default
    // signal dispositions and an empty mask (the daemon blocks signals for sd-event).
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    sigdelset(&all, SIGKILL);
    sigdelset(&all, SIGSTOP);
    posix_spawnattr_setflags(attr.get(), POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(attr.get(), 0);
    posix_spawnattr_setsigmask(attr.get(), &none);
    posix_spawnattr_setsigdefault(attr.get(), &all);

    pid_t pid = -1;
    int rc = posix_spawn(&pid, exe->c_str(), fa.get(), attr.get(), argvp.data(), envp.data());
    if (rc != 0) {
        std::string where = cmd.cwd ? " in '" + *cmd.cwd + "'" : std::string();
        return fail_errno(rc, "start '" + what + "'" + where);
    }
    Child child(pid);
    in_rd.reset();
    out_wr.reset();
    err_wr.reset();

    CommandResult res;
    Reader out{std::move(out_rd), &res.out};
    Reader err{std::move(err_rd), &res.err};
    for (Reader* r : {&out, &err})
        if (r->fd) UR_TRY(set_nonblock(r->fd.get()));
    std::optional<SigpipeGuard> sigpipe;
    size_t in_off = 0;
    if (in_wr) {
        UR_TRY(set_nonblock(in_wr.get()));
        sigpipe.emplace();
        if (cmd.stdin_data->empty()) in_wr.reset();
    }

    // pidfd wakes us at exit; without it (old kernel) a short tick does.
    UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));

    const auto start = Clock::now();
    std::optional<Clock::time_point> deadline;
    if (cmd.timeout.count() > 0) deadline = start + cmd.timeout;
    if (cancel && cancel->has_deadline() && (!deadline || cancel->deadline() < *deadline))
        deadline = cancel->deadline();

    std::optional<ErrorKind> stop_reason;
    std::optional<Clock::time_point> term_sent, kill_sent, exited_at;

    for (;;) {
        auto now = Clock::now();
        if (!child.reaped() && child.poll_exit()) exited_at = now;

        if (child.reaped() && !out.fd && !err.fd) break;
        if (exited_at && now >= *exited_at + kDrainGrace) {
            // The command is gone but something it started still holds our
            // pipes: it belongs to the command's group, so it goes too.
            child.signal_group(SIGKILL);
            break;
        }

        if (!stop_reason && !child.reaped()) {
            if (cancel) {
                if (auto c = cancel->check(); !c) stop_reason = c.error().kind;
            }
            if (!stop_reason && deadline && now >= *deadline) stop_reason = ErrorKind::Timeout;
            if (stop_reason) {
                child.signal_group(SIGTERM);
                term_sent = now;
            }
        }
        if (term_sent && !kill_sent && now >= *term_sent + kKillGrace) {
            // Also when the main child already left: grandchildren that
            // ignore SIGTERM must not survive the deadline.
            child.signal_group(SIGKILL);
            kill_sent = now;
        }

        // Sleep until something happens or the next timer is due.
        auto wake = now + std::chrono::milliseconds(pidfd ? 1000 : 20);
        if (cancel) wake = std::min(wake, now + std::chrono::milliseconds(100));
        if (deadline && !stop_reason) wake = std::min(wake, *deadline);
        if (term_sent && !kill_sent) wake = std::min(wake, *term_sent + kKillGrace);
        if (exited_at) wake = std::min(wake, *exited_at + kDrainGrace);

        struct pollfd pfds[4];
        nfds_t n = 0;
        int i_out = -1, i_err = -1, i_in = -1, i_pid = -1;
        if (out.fd) pfds[i_out = static_cast<int>(n++)] = {out.fd.get(), POLLIN, 0};
        if (err.fd) pfds[i_err = static_cast<int>(n++)] = {err.fd.get(), POLLIN, 0};
        if (in_wr) pfds[i_in = static_cast<int>(n++)] = {in_wr.get(), POLLOUT, 0};
        if (pidfd && !child.reaped()) pfds[i_pid = static_cast<int>(n++)] = {pidfd.get(), POLLIN, 0};
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(wake - now).count();
        if (ms < 0) ms = 0;
        int pr = ::poll(pfds, n, static_cast<int>(ms) + (ms == 0 ? 0 : 1));
        if (pr < 0) {
            if (errno == EINTR) continue;
            return fail_errno("poll '" + what + "'");
        }
        if (i_out >= 0 && pfds[i_out].revents) out.read_some();
        if (i_err >= 0 && pfds[i_err].revents) err.read_some();
        if (i_in >= 0 && pfds[i_in].revents) {
            if (pfds[i_in].revents & (POLLERR | POLLHUP)) {
                in_wr.reset(); // the command closed its stdin; the rest is dropped
            } else {
                const std::string& data = *cmd.stdin_data;
                ssize_t w = ::write(in_wr.get(), data.data() + in_off, std::min<size_t>(data.size() - in_off, 65536));
                if (w > 0)
                    in_off += static_cast<size_t>(w);
                else if (w < 0 && errno != EAGAIN && errno != EINTR)
                    in_wr.reset();
                if (in_off >= data.size()) in_wr.reset();
            }
        }
        (void)i_pid; // a readable pidfd just wakes us; poll_exit() reaps at the top
    }
    in_wr.reset();
    if (stop_reason) child.signal_group(SIGKILL); // leftovers of a killed command, whatever they hold
    if (!child.reaped()) {
        int st;
        while (::waitpid(child.pid(), &st, 0) < 0 && errno == EINTR) {
        }
    }

    if (stop_reason) {
        auto secs = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count() / 1000.0;
        char took[32];
        snprintf(took, sizeof took, "%.1f", secs);
        std::string msg = "'" + what + "' ";
        msg += *stop_reason == ErrorKind::Cancelled ? "was cancelled" : "timed out";
        msg += " after " + std::string(took) + "s; its process group was killed";
        std::string tail = tail_lines(res.err, 5, 1000);
        if (!tail.empty()) msg += "; stderr: " + tail;
        return fail(*stop_reason, msg);
    }

    int st = child.status();
    if (WIFEXITED(st)) {
        res.exit_code = WEXITSTATUS(st);
    } else if (WIFSIGNALED(st)) {
        res.exit_code = -1;
        res.signal = WTERMSIG(st);
    }
    res.truncated = out.truncated || err.truncated;
    return res;
}

Result<CommandResult> run_checked(const Command& cmd, const CancelToken* cancel)
{
    auto r = run_command(cmd, cancel);
    if (!r) return r;
    if (r->exit_code == 0) return r;
    std::string msg = "'" + describe(cmd.argv) + "' ";
    if (r->signal)
        msg += "was killed by signal " + std::to_string(r->signal) + " (" + strsignal(r->signal) + ")";
    else
        msg += "exited with status " + std::to_string(r->exit_code);
    std::string tail = tail_lines(r->err, 10, 2000);
    if (tail.empty() && cmd.capture_stdout) tail = tail_lines(r->out, 5, 1000);
    if (!tail.empty()) msg += ": " + tail;
    return fail(ErrorKind::ExternalFailed, msg);
}

} // namespace ur
