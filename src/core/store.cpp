#include "store.hpp"

#include "failpoint.hpp"
#include "recovery_journal.hpp"
#include "thread_pool.hpp"
#include "walk.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <thread>
#include <unistd.h>

namespace ur
{

namespace
{

// A plain backup directory that does not exist yet reads as an empty store.
// The descriptor of a directory removed right after it was opened finds
// nothing (every lookup in it is ENOENT) and takes nothing, so no reader needs
// a case of its own and nothing is created where the backups would go.
Result<UniqueFd> open_empty_removed_directory()
{
    const char* env = std::getenv("TMPDIR");
    std::string tried;
    for (const char* dir : {env && *env ? env : "/tmp", "/tmp", "/run", "/dev/shm"}) {
        std::string path = std::string(dir) + "/upgrade-recovery-empty-XXXXXX";
        if (!::mkdtemp(path.data())) {
            tried += (tried.empty() ? "" : ", ") + std::string(dir) + ": " + std::strerror(errno);
            continue;
        }
        auto fd = open_at(AT_FDCWD, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
        ::rmdir(path.c_str());
        return fd;
    }
    return fail(ErrorKind::Io, "no directory for an empty temporary one (" + tried + ")");
}

} // namespace

Result<Store> open_store(const Config& cfg, const std::string& root, StoreAccess access)
{
    const bool creates = access == StoreAccess::Create;
    auto loc = locate_store(cfg, root, access);
    if (!loc) return std::unexpected(loc.error());
    Store s;
    s.location = std::move(*loc);
    if (s.location.absent) {
        auto empty = open_empty_removed_directory();
        if (!empty) return std::unexpected(std::move(empty.error()).context("recovery store " + s.path()));
        s.fd = std::move(*empty);
        return s;
    }
    auto fd = open_at(AT_FDCWD, s.location.path, O_RDONLY | O_DIRECTORY);
    if (!fd) return std::unexpected(std::move(fd.error()).context("recovery store"));
    s.fd = std::move(*fd);
    if (creates && ::mkdirat(s.fd.get(), kBackupsDir, 0700) < 0 && errno != EEXIST)
        return fail_errno("create '" + s.location.path + "/" + kBackupsDir + "'");
    auto b = open_at(s.fd.get(), kBackupsDir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (!b) {
        if (b.error().err != ENOENT) return std::unexpected(b.error());
        return s; // a store that never held a backup: an empty list
    }
    s.backups_fd = std::move(*b);
    return s;
}

Result<StoreUsage> store_usage(const Store& store)
{
    struct statvfs sv;
    if (store.location.absent) {
        // Not created yet: it will be made on the filesystem of its nearest existing parent.
        std::string at = store.path();
        while (::statvfs(at.c_str(), &sv) != 0) {
            if (errno != ENOENT || at.size() <= 1) return fail_errno("statvfs " + at);
            const auto slash = at.find_last_of('/');
            at = slash == 0 || slash == std::string::npos ? "/" : at.substr(0, slash);
        }
    } else if (::fstatvfs(store.fd.get(), &sv) != 0) {
        return fail_errno("statvfs " + store.path());
    }
    return StoreUsage{static_cast<uint64_t>(sv.f_blocks) * sv.f_frsize,
                      static_cast<uint64_t>(sv.f_bavail) * sv.f_frsize};
}

Result<StoreLock> lock_store(const Store& store, bool create)
{
    if (store.location.absent) return StoreLock(); // nothing there to guard (Create makes the directory first)
    auto fd = open_at(store.fd.get(), kLockFile, O_RDWR | O_NOFOLLOW | (create ? O_CREAT : 0), 0600);
    if (!fd && !create && fd.error().err == ENOENT) return StoreLock();
    if (!fd) return std::unexpected(std::move(fd.error()).context("lock file"));
    if (::flock(fd->get(), LOCK_EX | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK)
            return fail(ErrorKind::Busy, "another upgrade-recovery operation is running on " + store.path() +
                                             " (wait for it to finish, see 'upgrade-recovery status')");
        return fail_errno("lock " + store.path());
    }
    return StoreLock(std::move(*fd));
}

Result<StoreLock> lock_store_patiently(const Store& store, std::chrono::seconds patience,
                                       const std::function<void()>& waiting)
{
    const auto end = std::chrono::steady_clock::now() + patience;
    for (bool first = true;; first = false) {
        auto lock = lock_store(store);
        if (lock || lock.error().kind != ErrorKind::Busy || std::chrono::steady_clock::now() >= end) return lock;
        if (first && waiting) waiting();
        std::this_thread::sleep_for(std::chrono::seconds(1));
    }
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
    // A real UTC time: ids are names people read, and the order of generations.
    auto num = [&](size_t at, size_t len) {
        int v = 0;
        for (size_t i = at; i < at + len; i++)
            v = v * 10 + (id[i] - '0');
        return v;
    };
    const int year = num(0, 4), month = num(4, 2), day = num(6, 2);
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (year < 1970 || month < 1 || month > 12 || day < 1 || day > days[month - 1] + (month == 2 && leap ? 1 : 0) ||
        num(9, 2) > 23 || num(11, 2) > 59 || num(13, 2) > 59)
        return false;
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

Result<> check_requested_backup_id(const std::string& id, const std::vector<std::string>& existing, std::time_t now)
{
    if (!valid_backup_id(id))
        return fail(ErrorKind::InvalidArgs, "'" + id + "' is not a valid backup id (YYYYMMDDTHHMMSSZ, a UTC time)");
    // Automatic ids never sort before an existing one: an id far ahead of the clock
    // would name every later backup after itself.
    if (compare_backup_ids(id, make_backup_id(now + 86400, {})) > 0)
        return fail(ErrorKind::InvalidArgs, "backup id '" + id + "' lies more than a day ahead of the clock");
    if (std::find(existing.begin(), existing.end(), id) != existing.end())
        return fail(ErrorKind::InvalidArgs, "backup '" + id + "' exists already");
    // Retention keeps the newest, `latest` names the newest.
    if (!existing.empty() && compare_backup_ids(id, existing.back()) < 0)
        return fail(ErrorKind::InvalidArgs, "backup id '" + id + "' sorts before the newest backup, " +
                                                existing.back() + "; ids are the order of the generations");
    return {};
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

Result<std::vector<std::string>> list_generations(const Store& store)
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

const UnreadableGeneration* Generations::find_unreadable(const std::string& id) const
{
    for (const auto& u : unreadable)
        if (u.id == id) return &u;
    return nullptr;
}

bool Generations::has(const std::string& id) const
{
    return std::find(backups.begin(), backups.end(), id) != backups.end() ||
           std::find(damaged.begin(), damaged.end(), id) != damaged.end() || find_unreadable(id);
}

Result<Generations> scan_generations(const Store& store)
{
    auto ids = list_generations(store);
    if (!ids) return std::unexpected(ids.error());
    // Publishing renames a staging directory holding the metadata, so a backup
    // always has it. A name without it, or with metadata that does not read or
    // names another id, was made by hand or left by damage: counted as a backup,
    // retention would prune real ones for it (and a future id kept it forever).
    // Another error says nothing of the kind: that one may be a backup.
    Generations g;
    for (auto& id : *ids) {
        auto m = read_metadata(store, id);
        if (m)
            g.backups.push_back(std::move(id));
        else if (m.error().kind == ErrorKind::Corrupt)
            g.damaged.push_back(std::move(id));
        else if (m.error().kind != ErrorKind::NotFound) // NotFound: deleted since the listing
            g.unreadable.push_back({std::move(id), std::move(m.error())});
    }
    return g;
}

Result<std::vector<std::string>> list_backups(const Store& store)
{
    auto g = scan_generations(store);
    if (!g) return std::unexpected(g.error());
    return std::move(g->backups);
}

namespace
{

// `latest` as it is now; see LatestLink.
Result<LatestLink> read_latest_link(const Store& store)
{
    LatestLink l;
    char buf[256];
    ssize_t n = ::readlinkat(store.fd.get(), kLatestLink, buf, sizeof buf);
    if (n < 0) {
        if (errno == ENOENT) return l;
        if (errno != EINVAL) return fail_errno("read '" + store.path() + "/latest'");
        struct stat st;
        l.directory = ::fstatat(store.fd.get(), kLatestLink, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
        l.damage = l.directory ? "is a directory, not a symbolic link" : "is not a symbolic link";
        return l;
    }
    std::string target(buf, static_cast<size_t>(n));
    std::string prefix = std::string(kBackupsDir) + "/";
    if (static_cast<size_t>(n) == sizeof buf || target.rfind(prefix, 0) != 0 ||
        !valid_backup_id(target.substr(prefix.size()))) {
        l.damage = "points at '" + target.substr(0, 200) + "', which is not a backup";
        return l;
    }
    std::string name = target.substr(prefix.size());
    struct stat st;
    if (!store.backups_fd || ::fstatat(store.backups_fd.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (store.backups_fd && errno != ENOENT) return fail_errno("stat '" + store.path() + "/" + target + "'");
        l.damage = "names backup " + name + ", which does not exist";
    } else if (!S_ISDIR(st.st_mode)) {
        l.damage = "names backup " + name + ", which is not a directory";
    } else {
        l.id = std::move(name);
    }
    return l;
}

} // namespace

Result<LatestLink> read_latest(const Store& store)
{
    // Read without the lock: a delete moves `latest` before the generation goes,
    // so a generation missing under a link read before the move is read again.
    auto l = read_latest_link(store);
    if (l && !l->damage.empty()) l = read_latest_link(store);
    return l;
}

Error latest_error(const Store& store, const LatestLink& l)
{
    const std::string link = store.path() + "/latest";
    std::string fix = "take a new backup, which sets it again";
    if (auto ids = list_backups(store); ids && !ids->empty())
        fix +=
            ", or point it at the newest backup: ln -sfn " + std::string(kBackupsDir) + "/" + ids->back() + " " + link;
    // Nothing renames (or ln -sfn links) over a directory: it goes first.
    if (l.directory) fix = "move it away (mv " + link + " " + link + ".damaged), then " + fix;
    return Error{ErrorKind::Corrupt, 0, "'" + link + "' " + l.damage + " (" + fix + ")"};
}

Result<std::optional<std::string>> latest_backup(const Store& store)
{
    auto l = read_latest(store);
    if (!l) return std::unexpected(l.error());
    if (l->damage.empty()) return l->id;
    return std::unexpected(latest_error(store, *l));
}

Result<std::vector<BackupMetadata>> read_all_metadata(const Store& store)
{
    // Every generation: one that is not a backup may still be one that was damaged.
    auto ids = list_generations(store);
    if (!ids) return std::unexpected(ids.error());
    std::vector<BackupMetadata> out;
    for (const auto& id : *ids) {
        auto m = read_metadata(store, id);
        if (!m) return std::unexpected(std::move(m.error()).context("backup " + id));
        out.push_back(std::move(*m));
    }
    return out;
}

Result<std::string> backup_or_latest(const Store& store, const std::optional<std::string>& id)
{
    if (id && !id->empty()) return *id;
    auto latest = latest_backup(store);
    if (!latest) return std::unexpected(latest.error());
    if (!*latest) return fail(ErrorKind::NotFound, "there is no backup in " + store.path());
    return **latest;
}

Result<BackupMetadata> read_metadata(const Store& store, const std::string& id)
{
    if (!valid_backup_id(id)) return fail(ErrorKind::InvalidArgs, "'" + id + "' is not a backup id");
    if (!store.backups_fd) return fail(ErrorKind::NotFound, "no backup '" + id + "' in " + store.path());
    const std::string dir = store.path() + "/" + kBackupsDir + "/" + id;
    auto gen = open_at(store.backups_fd.get(), id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (!gen) {
        const int err = gen.error().err;
        if (err == ENOENT) return fail(ErrorKind::NotFound, "no backup '" + id + "' in " + store.path());
        if (err == ENOTDIR || err == ELOOP) return fail(ErrorKind::Corrupt, "'" + dir + "' is not a directory");
        return std::unexpected(gen.error());
    }
    const std::string file = dir + "/" + kMetadataFile;
    auto m = read_metadata_file(gen->get(), file);
    if (!m) return m;
    // A generation copied or renamed by hand would pass for another backup, and
    // take that one's place in the order of the generations.
    if (m->id != id)
        return fail(ErrorKind::Corrupt,
                    file + ": id '" + m->id.substr(0, 64) + "' does not match its directory, backup " + id);
    return m;
}

namespace
{

// rm -rf of a whole generation with a few threads: its subtrees are
// independent, and unlinking on a cold cache waits on the disk. The same
// remove_tree_at does every part, so no mount is ever crossed.
Result<> remove_generation(int dirfd, const std::string& name)
{
    constexpr unsigned kThreads = 4;
    constexpr size_t kWanted = 64; // subtrees to spread over the threads
    auto root = open_at(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (!root) {
        if (root.error().err == ENOENT) return {};
        // A damaged "generation" that is a file or a symlink (list shows it, delete
        // removes it): unlinked, never followed.
        if (root.error().err == ENOTDIR || root.error().err == ELOOP) return remove_tree_at(dirfd, name);
        return std::unexpected(root.error());
    }
    struct Sub {
        SharedFd parent;
        std::string name;
    };
    // Breadth first until enough subtrees: a generation's bulk is a few levels
    // down (kubelet/pods/<uid>). Only directories on the same mount are entered.
    std::vector<SharedFd> level{share(std::move(*root))};
    std::vector<Sub> frontier;
    for (int depth = 0; depth < 4; depth++) {
        std::vector<Sub> next;
        for (const auto& d : level) {
            struct stat here;
            uint64_t here_mnt = 0;
            UR_TRY(stat_at(d->get(), "", here, &here_mnt));
            auto names = list_dir(d->get());
            if (!names) return std::unexpected(names.error());
            for (const auto& n : *names) {
                struct stat st;
                uint64_t mnt = 0;
                if (!stat_at(d->get(), n, st, &mnt) || !S_ISDIR(st.st_mode)) continue;
                if (!other_mount(here.st_dev, here_mnt, st.st_dev, mnt))
                    next.push_back({d, n}); // a mount is left for remove_tree_at to refuse
            }
        }
        if (next.empty()) break;
        frontier = std::move(next);
        if (frontier.size() >= kWanted || depth == 3) break;
        level.clear();
        for (const auto& sub : frontier)
            if (auto fd = open_at(sub.parent->get(), sub.name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW); fd)
                level.push_back(share(std::move(*fd)));
    }
    {
        ThreadPool pool(kThreads, "delete");
        std::vector<std::future<Result<>>> done;
        for (const auto& sub : frontier)
            done.push_back(pool.submit([sub](unsigned) { return remove_tree_at(sub.parent->get(), sub.name); }));
        std::optional<Error> first;
        for (auto& f : done)
            if (auto r = f.get(); !r && !first) first = r.error();
        if (first) return std::unexpected(std::move(*first));
    }
    return remove_tree_at(dirfd, name); // what is left above the subtrees
}

} // namespace

Result<> delete_backup(const Store& store, const std::string& id, bool allow_last)
{
    auto doomed = retire_backup(store, id, allow_last);
    if (!doomed) return std::unexpected(doomed.error());
    return remove_retired(store, *doomed);
}

Result<std::string> retire_backup(const Store& store, const std::string& id, bool allow_last)
{
    if (!valid_backup_id(id)) return fail(ErrorKind::InvalidArgs, "'" + id + "' is not a backup id");
    auto scan = scan_generations(store);
    if (!scan) return std::unexpected(scan.error());
    // Anything named like a backup goes when named: also what is not one (list shows it as such).
    if (!scan->has(id)) return fail(ErrorKind::NotFound, "no backup '" + id + "' in " + store.path());
    const std::vector<std::string>& ids = scan->backups;
    const bool complete = std::find(ids.begin(), ids.end(), id) != ids.end();
    const UnreadableGeneration* unreadable = scan->find_unreadable(id);
    std::string next;
    for (const auto& i : ids)
        if (i != id) next = i; // newest other
    // Counted, not read from `latest`: a missing or damaged link must not let the last one go.
    // One that cannot be read now may be a good backup: it is not let go either.
    if ((complete || unreadable) && next.empty() && !allow_last)
        return fail(
            ErrorKind::Refused,
            "'" + id + "' is the only backup" +
                (complete ? "" : " there may be (its metadata cannot be read: " + unreadable->error.message + ")") +
                "; deleting it leaves nothing to recover to ('upgrade-recovery delete --force " + id +
                "' deletes it anyway)");
    auto latest = read_latest(store);
    if (!latest) return std::unexpected(latest.error());
    // A damaged link names no backup; the newest going then sets it to the next newest,
    // as when it named the newest. A directory cannot be replaced: refused first.
    bool names_it = latest->id == id || (!latest->damage.empty() && !ids.empty() && id == ids.back());
    if (names_it && latest->directory) return std::unexpected(latest_error(store, *latest));
    if (names_it) {
        if (next.empty()) {
            if (::unlinkat(store.fd.get(), kLatestLink, 0) < 0 && errno != ENOENT) return fail_errno("remove latest");
            // Durable before the generation goes: a power cut must not bring back a dangling latest.
            UR_TRY(fsync_fd(store.fd.get(), store.path()));
        } else {
            UR_TRY(replace_symlink_at(store.fd.get(), kLatestLink, std::string(kBackupsDir) + "/" + next));
        }
    }
    // Rename first so a crash mid-delete leaves a staging-like name the next run removes.
    std::string doomed = std::string(kDeletedPrefix) + id;
    if (::renameat(store.backups_fd.get(), id.c_str(), store.backups_fd.get(), doomed.c_str()) < 0)
        return fail_errno("delete backup '" + id + "'");
    UR_TRY(fsync_fd(store.backups_fd.get(), "backups directory"));
    failpoint("delete.retired");
    return doomed;
}

Result<> remove_retired(const Store& store, const std::string& name)
{
    return remove_generation(store.backups_fd.get(), name);
}

Result<std::vector<std::string>> prune_backups(const Store& store, unsigned keep, const std::vector<std::string>& spare,
                                               const std::function<void(const std::string&)>& retired)
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
        if (std::find(spare.begin(), spare.end(), id) != spare.end()) continue;
        auto doomed = retire_backup(store, id);
        if (!doomed) return std::unexpected(doomed.error());
        removed.push_back(id);
        if (retired) retired(id);
        UR_TRY(remove_retired(store, *doomed));
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

// Old enough only: a younger one may belong to a writer that holds no lock.
static Result<unsigned> remove_stale_temporaries(int dirfd, const std::string& where)
{
    constexpr time_t kMinAge = 600;
    auto names = list_dir(dirfd);
    if (!names) return std::unexpected(std::move(names.error()).context(where));
    const time_t now = ::time(nullptr);
    unsigned n = 0;
    for (const auto& name : *names) {
        struct stat st;
        // Files, and the links replace_symlink_at makes (publishing `latest`).
        if (!is_atomic_write_temp(name) || ::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0 ||
            !(S_ISREG(st.st_mode) || S_ISLNK(st.st_mode)) || now - st.st_mtime < kMinAge)
            continue;
        if (::unlinkat(dirfd, name.c_str(), 0) < 0 && errno != ENOENT)
            return fail_errno("remove stale temporary '" + where + "/" + name + "'");
        n++;
    }
    if (n) UR_TRY(fsync_fd(dirfd, where));
    return n;
}

Result<unsigned> remove_stale_store_temporaries(const Store& store)
{
    if (store.location.absent) return 0u;
    auto n = remove_stale_temporaries(store.fd.get(), store.path());
    if (!n) return n;
    auto rec = open_at(store.fd.get(), kRecoveryDir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (!rec) return rec.error().err == ENOENT ? *n : Result<unsigned>(std::unexpected(rec.error()));
    auto m = remove_stale_temporaries(rec->get(), store.path() + "/" + kRecoveryDir);
    if (!m) return m;
    return *n + *m;
}

} // namespace ur
