#include "store.hpp"

#include "walk.hpp"

#include <algorithm>
#include <cstring>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

namespace ur
{

Result<Store> open_store(const Config& cfg, const std::string& root, bool writable)
{
    auto loc = locate_store(cfg, root, writable);
    if (!loc) return std::unexpected(loc.error());
    Store s;
    s.location = std::move(*loc);
    auto fd = open_at(AT_FDCWD, s.location.path, O_RDONLY | O_DIRECTORY);
    if (!fd) return std::unexpected(std::move(fd.error()).context("recovery store"));
    s.fd = std::move(*fd);
    if (writable && ::mkdirat(s.fd.get(), kBackupsDir, 0700) < 0 && errno != EEXIST)
        return fail_errno("create '" + s.location.path + "/" + kBackupsDir + "'");
    auto b = open_at(s.fd.get(), kBackupsDir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (!b) {
        if (b.error().err != ENOENT) return std::unexpected(b.error());
        return s; // read-only use of a store that never held a backup: an empty list
    }
    s.backups_fd = std::move(*b);
    return s;
}

Result<StoreLock> lock_store(const Store& store)
{
    auto fd = open_at(store.fd.get(), kLockFile, O_RDWR | O_CREAT | O_NOFOLLOW, 0600);
    if (!fd) return std::unexpected(std::move(fd.error()).context("lock file"));
    if (::flock(fd->get(), LOCK_EX | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK)
            return fail(ErrorKind::Busy, "another upgrade-recovery operation is running on " + store.path() +
                                             " (wait for it to finish, see 'upgrade-recovery status')");
        return fail_errno("lock " + store.path());
    }
    return StoreLock(std::move(*fd));
}

bool valid_backup_id(const std::string& id)
{
    // YYYYMMDDTHHMMSSZ[-N]
    if (id.size() < 16) return false;
    for (size_t i = 0; i < 16; i++) {
        char c = id[i];
        if (i == 8) {
            if (c != 'T') return false;
        } else if (i == 15) {
            if (c != 'Z') return false;
        } else if (c < '0' || c > '9') {
            return false;
        }
    }
    if (id.size() == 16) return true;
    if (id[16] != '-' || id.size() == 17 || id.size() > 24) return false;
    for (size_t i = 17; i < id.size(); i++)
        if (id[i] < '0' || id[i] > '9') return false;
    return id[17] != '0';
}

int compare_backup_ids(const std::string& a, const std::string& b)
{
    int c = a.compare(0, 16, b, 0, 16);
    if (c != 0) return c < 0 ? -1 : 1;
    unsigned long na = a.size() > 17 ? std::stoul(a.substr(17)) : 0;
    unsigned long nb = b.size() > 17 ? std::stoul(b.substr(17)) : 0;
    return na < nb ? -1 : na > nb ? 1 : 0;
}

std::string make_backup_id(std::time_t now, const std::vector<std::string>& existing)
{
    struct tm tm;
    gmtime_r(&now, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y%m%dT%H%M%SZ", &tm);
    std::string id = base;
    // Never reuse or sort before an existing id, even if the clock went back.
    std::string newest;
    for (const auto& e : existing)
        if (newest.empty() || compare_backup_ids(e, newest) > 0) newest = e;
    for (unsigned n = 1; !newest.empty() && compare_backup_ids(id, newest) <= 0; n++) {
        std::string stem = newest.substr(0, 16) > id.substr(0, 16) ? newest.substr(0, 16) : id.substr(0, 16);
        id = stem + "-" + std::to_string(n);
    }
    return id;
}

Result<std::vector<std::string>> list_backups(const Store& store)
{
    std::vector<std::string> ids;
    if (!store.backups_fd) return ids;
    auto names = list_dir(store.backups_fd.get());
    if (!names) return std::unexpected(names.error());
    for (auto& n : *names)
        if (valid_backup_id(n)) ids.push_back(n);
    std::sort(ids.begin(), ids.end(), [](const auto& a, const auto& b) { return compare_backup_ids(a, b) < 0; });
    return ids;
}

Result<std::optional<std::string>> latest_backup(const Store& store)
{
    char buf[256];
    ssize_t n = ::readlinkat(store.fd.get(), kLatestLink, buf, sizeof buf - 1);
    if (n < 0) {
        if (errno == ENOENT) return std::optional<std::string>();
        return fail_errno("read '" + store.path() + "/latest'");
    }
    std::string target(buf, static_cast<size_t>(n));
    std::string prefix = std::string(kBackupsDir) + "/";
    if (target.rfind(prefix, 0) != 0 || !valid_backup_id(target.substr(prefix.size())))
        return fail(ErrorKind::Corrupt, "'" + store.path() + "/latest' points at '" + target + "'");
    return std::optional<std::string>(target.substr(prefix.size()));
}

Result<BackupMetadata> read_metadata(const Store& store, const std::string& id)
{
    if (!valid_backup_id(id)) return fail(ErrorKind::InvalidArgs, "'" + id + "' is not a backup id");
    if (!store.backups_fd) return fail(ErrorKind::NotFound, "no backup '" + id + "' in " + store.path());
    auto text = read_file_at(store.backups_fd.get(), id + "/" + kMetadataFile, 16 << 20);
    if (!text) {
        if (text.error().err == ENOENT) return fail(ErrorKind::NotFound, "no backup '" + id + "' in " + store.path());
        return std::unexpected(text.error());
    }
    return metadata_from_toml(*text, store.path() + "/backups/" + id + "/" + kMetadataFile);
}

Result<> delete_backup(const Store& store, const std::string& id, bool allow_last)
{
    auto ids = list_backups(store);
    if (!ids) return std::unexpected(ids.error());
    if (std::find(ids->begin(), ids->end(), id) == ids->end())
        return fail(ErrorKind::NotFound, "no backup '" + id + "' in " + store.path());
    auto latest = latest_backup(store);
    if (!latest) return std::unexpected(latest.error());
    if (*latest && **latest == id) {
        std::string next;
        for (const auto& i : *ids)
            if (i != id) next = i; // newest other
        if (next.empty()) {
            if (!allow_last)
                return fail(ErrorKind::Refused,
                            "'" + id + "' is the only backup; deleting it leaves nothing to recover to");
            if (::unlinkat(store.fd.get(), kLatestLink, 0) < 0 && errno != ENOENT) return fail_errno("remove latest");
        } else {
            UR_TRY(replace_symlink_at(store.fd.get(), kLatestLink, std::string(kBackupsDir) + "/" + next));
        }
    }
    // Rename first so a crash mid-delete leaves a staging-like name the next run removes.
    std::string doomed = std::string(kStagingPrefix) + "deleted-" + id;
    if (::renameat(store.backups_fd.get(), id.c_str(), store.backups_fd.get(), doomed.c_str()) < 0)
        return fail_errno("delete backup '" + id + "'");
    UR_TRY(fsync_fd(store.backups_fd.get(), "backups directory"));
    return remove_tree_at(store.backups_fd.get(), doomed);
}

Result<std::vector<std::string>> prune_backups(const Store& store, unsigned keep)
{
    std::vector<std::string> removed;
    auto ids = list_backups(store);
    if (!ids) return std::unexpected(ids.error());
    auto latest = latest_backup(store);
    if (!latest) return std::unexpected(latest.error());
    if (keep < 1) keep = 1;
    size_t excess = ids->size() > keep ? ids->size() - keep : 0;
    for (size_t i = 0; i < ids->size() && removed.size() < excess; i++) {
        const auto& id = (*ids)[i];
        if (*latest && **latest == id) continue;
        UR_TRY(delete_backup(store, id));
        removed.push_back(id);
    }
    return removed;
}

Result<unsigned> remove_stale_staging(const Store& store)
{
    if (!store.backups_fd) return 0u;
    auto names = list_dir(store.backups_fd.get());
    if (!names) return std::unexpected(names.error());
    unsigned n = 0;
    for (const auto& name : *names) {
        if (name.rfind(kStagingPrefix, 0) != 0) continue;
        UR_TRY_CTX(remove_tree_at(store.backups_fd.get(), name), "remove stale staging '" + name + "'");
        n++;
    }
    if (n) UR_TRY(fsync_fd(store.backups_fd.get(), "backups directory"));
    return n;
}

} // namespace ur
