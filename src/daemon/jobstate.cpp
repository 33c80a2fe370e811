#include "jobstate.hpp"

#include "fd.hpp"
#include "text.hpp"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <fcntl.h>

namespace ur::dbus
{

namespace
{

// One record per line: values escape '\\' and newlines.
std::string escape(const std::string& s)
{
    std::string o;
    for (char c : s) {
        if (c == '\\')
            o += "\\\\";
        else if (c == '\n')
            o += "\\n";
        else
            o += c;
    }
    return o;
}

std::string unescape(std::string_view s)
{
    std::string o;
    for (size_t i = 0; i < s.size(); i++) {
        if (s[i] == '\\' && i + 1 < s.size()) {
            o += s[i + 1] == 'n' ? '\n' : s[i + 1];
            i++;
        } else {
            o += s[i];
        }
    }
    return o;
}

template <class T> bool parse_num(std::string_view v, T& out)
{
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
    return ec == std::errc() && p == v.data() + v.size();
}

} // namespace

bool JobRecord::terminal() const
{
    return state == "Succeeded" || state == "Timeout" || state == "Error" || state == "Cancelled";
}

std::string format_state(const DaemonState& s)
{
    std::string o = "last_job_id=" + std::to_string(s.last_job_id) + "\n";
    if (s.result) o += "result=" + escape(*s.result) + "\n";
    o += "last_error_name=" + escape(s.last_error_name) + "\n";
    o += "last_error=" + escape(s.last_error) + "\n";
    if (s.job) {
        const JobRecord& j = *s.job;
        o += "job.id=" + std::to_string(j.id) + "\n";
        o += "job.type=" + escape(j.type) + "\n";
        o += "job.state=" + escape(j.state) + "\n";
        o += "job.backup_id=" + escape(j.backup_id) + "\n";
        o += "job.error_name=" + escape(j.error_name) + "\n";
        o += "job.message=" + escape(j.message) + "\n";
        o += "job.started=" + std::to_string(j.started) + "\n";
        o += "job.finished=" + std::to_string(j.finished) + "\n";
    }
    return o;
}

Result<DaemonState> parse_state(std::string_view text)
{
    DaemonState s;
    JobRecord j;
    bool have_job = false;
    unsigned line = 0;
    for (std::string_view l : split_lines(text)) {
        line++;
        if (l.empty()) continue;
        size_t eq = l.find('=');
        if (eq == std::string_view::npos)
            return fail(ErrorKind::Corrupt, "daemon state line " + std::to_string(line) + ": no '='");
        std::string_view k = l.substr(0, eq), v = l.substr(eq + 1);
        bool ok = true;
        if (k == "last_job_id")
            ok = parse_num(v, s.last_job_id);
        else if (k == "result")
            s.result = unescape(v);
        else if (k == "last_error_name")
            s.last_error_name = unescape(v);
        else if (k == "last_error")
            s.last_error = unescape(v);
        else if (k.starts_with("job.")) {
            have_job = true;
            if (k == "job.id")
                ok = parse_num(v, j.id);
            else if (k == "job.type")
                j.type = unescape(v);
            else if (k == "job.state")
                j.state = unescape(v);
            else if (k == "job.backup_id")
                j.backup_id = unescape(v);
            else if (k == "job.error_name")
                j.error_name = unescape(v);
            else if (k == "job.message")
                j.message = unescape(v);
            else if (k == "job.started")
                ok = parse_num(v, j.started);
            else if (k == "job.finished")
                ok = parse_num(v, j.finished);
            // Unknown job.* keys come from a newer version: ignored.
        }
        if (!ok)
            return fail(ErrorKind::Corrupt,
                        "daemon state line " + std::to_string(line) + ": bad number for '" + std::string(k) + "'");
    }
    if (have_job) s.job = std::move(j);
    return s;
}

Result<DaemonState> load_state(const std::string& root)
{
    auto text = read_file_at(AT_FDCWD, root_path(root, kStateDir) + "/" + kStateFile, 1 << 20);
    if (!text) {
        if (text.error().err == ENOENT) return DaemonState{};
        return std::unexpected(std::move(text.error()).context("read daemon state"));
    }
    return parse_state(*text);
}

uint32_t job_numbers_after_damage(std::string_view text, int64_t now)
{
    uint32_t highest = 0;
    for (size_t pos = 0; pos < text.size();) {
        size_t nl = text.find('\n', pos);
        if (nl == std::string_view::npos) nl = text.size();
        std::string_view l = text.substr(pos, nl - pos);
        pos = nl + 1;
        uint32_t n = 0;
        for (std::string_view key : {"last_job_id=", "job.id="})
            if (l.starts_with(key) && parse_num(l.substr(key.size()), n) && n > highest) highest = n;
    }
    // Below the top: room to count on (the clock reaches it in 2106).
    const auto clock = static_cast<uint32_t>(std::clamp<int64_t>(now, 0, UINT32_MAX - (1u << 24)));
    return std::max(highest, clock);
}

uint32_t job_numbers_after_damage(const std::string& root, int64_t now)
{
    auto text = read_file_at(AT_FDCWD, root_path(root, kStateDir) + "/" + kStateFile, 1 << 20);
    return job_numbers_after_damage(text ? std::string_view(*text) : std::string_view(), now);
}

Result<> save_state(const std::string& root, const DaemonState& s)
{
    auto rootfd = open_at(AT_FDCWD, root, O_RDONLY | O_DIRECTORY);
    if (!rootfd) return std::unexpected(std::move(rootfd.error()).context("daemon state"));
    std::string rel = std::string(kStateDir).substr(1);
    auto dir = mkdir_p_at(rootfd->get(), rel, 0700);
    if (!dir) return std::unexpected(std::move(dir.error()).context("daemon state"));
    UR_TRY_CTX(write_file_atomic_at(dir->get(), kStateFile, format_state(s), 0600), "write daemon state");
    return {};
}

} // namespace ur::dbus
