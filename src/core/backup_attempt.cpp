#include "backup_attempt.hpp"

#include "fd.hpp"
#include "host_info.hpp"
#include "json_text.hpp"

#include <fcntl.h>
#include <nlohmann/json.hpp>

namespace ur
{

using nlohmann::json;

std::string backup_attempt_to_json(const BackupAttempt& a)
{
    json o = {{"state", a.state}, {"started", a.started}, {"pid", a.pid}, {"boot_id", a.boot_id}};
    if (!a.backup_id.empty()) o["backup_id"] = a.backup_id;
    if (!a.finished.empty()) {
        o["finished"] = a.finished;
        o["duration_seconds"] = a.duration_seconds;
    }
    if (!a.error_kind.empty()) {
        o["error_kind"] = a.error_kind;
        o["error"] = a.error;
    }
    return json_text(o, 2) + "\n";
}

Result<BackupAttempt> backup_attempt_from_json(std::string_view text)
{
    try {
        json o = json::parse(text);
        BackupAttempt a;
        a.state = o.at("state").get<std::string>();
        a.started = o.at("started").get<std::string>();
        a.pid = o.at("pid").get<int64_t>();
        a.boot_id = o.at("boot_id").get<std::string>();
        a.backup_id = o.value("backup_id", "");
        a.finished = o.value("finished", "");
        a.duration_seconds = o.value("duration_seconds", 0.0);
        a.error_kind = o.value("error_kind", "");
        a.error = o.value("error", "");
        if (a.state != "running" && a.state != "succeeded" && a.state != "failed")
            return fail(ErrorKind::Corrupt, "unknown state '" + a.state + "'");
        return a;
    } catch (const json::exception& e) {
        return fail(ErrorKind::Corrupt, e.what());
    }
}

Result<> save_backup_attempt(int store_fd, const BackupAttempt& a)
{
    return write_file_atomic_at(store_fd, kLastBackupFile, backup_attempt_to_json(a), 0644);
}

Result<std::optional<BackupAttempt>> load_backup_attempt(int store_fd)
{
    auto text = read_file_at(store_fd, kLastBackupFile, 1 << 20);
    if (!text) {
        if (text.error().err == ENOENT) return std::nullopt;
        return std::unexpected(std::move(text.error()).context(kLastBackupFile));
    }
    auto a = backup_attempt_from_json(*text);
    if (!a) return std::unexpected(std::move(a.error()).context(kLastBackupFile));
    if (a->state == "running" && !upgrade_recovery_process_running(a->pid, a->boot_id)) a->state = "interrupted";
    return std::optional<BackupAttempt>(std::move(*a));
}

} // namespace ur
