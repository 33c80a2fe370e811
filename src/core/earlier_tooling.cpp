#include "earlier_tooling.hpp"

#include "compat_script.hpp"
#include "fd.hpp"
#include "text.hpp"
#include "walk.hpp"

#include <cerrno>
#include <fcntl.h>
#include <set>
#include <sys/stat.h>
#include <utility>

namespace ur
{

namespace
{

// The old backup's names, in the order the old script wrote them (prior-art.md 1.4, 8).
constexpr const char* kBackupNames[] = {"cluster", "etc",        "usrlocal",        "local",
                                        "kubelet", "extras.tgz", "etc.exclude.list"};

// Whether `name` is in the store's directory; errors other than ENOENT are errors.
Result<bool> present(const Store& store, const std::string& name)
{
    struct stat st;
    if (auto r = stat_at(store.fd.get(), name, st); !r) {
        if (r.error().err == ENOENT) return false;
        return std::unexpected(std::move(r.error()).context("look at " + store.path() + "/" + name));
    }
    return true;
}

// Whether upgrade-recovery.sh is there and not ours (our compatibility script carries a marker).
Result<bool> earlier_script_in_place(const Store& store)
{
    auto text = read_file_at(store.fd.get(), kCompatScriptName, 1 << 20);
    if (!text) {
        if (text.error().err == ENOENT) return false;
        return std::unexpected(std::move(text.error()).context("read " + store.path() + "/" + kCompatScriptName));
    }
    return text->find(kCompatScriptMarker) == std::string::npos;
}

// Allocated bytes below an open directory, on its own file system; each inode once.
Result<uint64_t> tree_bytes(int dirfd, const std::string& where, dev_t dev, std::set<std::pair<dev_t, ino_t>>& seen)
{
    auto names = list_dir(dirfd);
    if (!names) return std::unexpected(std::move(names.error()).context(where));
    uint64_t total = 0;
    for (const auto& n : *names) {
        struct stat st;
        UR_TRY_CTX(stat_at(dirfd, n, st), where);
        if (st.st_dev != dev) continue; // a mount below: not the partition's space
        if (st.st_nlink > 1 && !S_ISDIR(st.st_mode) && !seen.insert({st.st_dev, st.st_ino}).second) continue;
        total += static_cast<uint64_t>(st.st_blocks) * 512;
        if (!S_ISDIR(st.st_mode)) continue;
        auto sub = open_at(dirfd, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
        if (!sub) return std::unexpected(std::move(sub.error()).context(where + "/" + n));
        auto b = tree_bytes(sub->get(), where + "/" + n, dev, seen);
        if (!b) return b;
        total += *b;
    }
    return total;
}

} // namespace

Result<EarlierFiles> find_earlier_files(const Store& store)
{
    EarlierFiles f;
    for (const char* n : kBackupNames) {
        auto p = present(store, n);
        if (!p) return std::unexpected(p.error());
        if (*p) f.backup.push_back(n);
    }
    auto p = present(store, kEarlierProgressFile);
    if (!p) return std::unexpected(p.error());
    if (!*p) return f;
    // The old script appends one stage per line (started, restore_files, ...).
    auto text = read_file_at(store.fd.get(), kEarlierProgressFile, 4096);
    std::vector<std::string> stages;
    if (text)
        for (auto line : split_lines(*text))
            if (auto t = trim(line); !t.empty()) stages.emplace_back(t);
    f.progress = text ? join(stages, ", ") : "unreadable: " + text.error().message;
    // Where the refusal sends the administrator to finish it: never to ours, whose
    // --resume resumes a recovery of upgrade-recovery.
    auto kept = present(store, kEarlierScriptKept);
    if (!kept) return std::unexpected(kept.error());
    if (*kept) {
        f.script = kEarlierScriptKept;
    } else {
        auto in_place = earlier_script_in_place(store);
        if (!in_place) return std::unexpected(in_place.error());
        if (*in_place) f.script = kCompatScriptName;
    }
    return f;
}

Result<uint64_t> earlier_backup_bytes(const Store& store, const EarlierFiles& f)
{
    struct stat top;
    UR_TRY_CTX(stat_at(store.fd.get(), "", top), "look at " + store.path());
    std::set<std::pair<dev_t, ino_t>> seen;
    uint64_t total = 0;
    for (const auto& n : f.backup) {
        const std::string where = store.path() + "/" + n;
        struct stat st;
        UR_TRY_CTX(stat_at(store.fd.get(), n, st), "look at " + where);
        if (st.st_dev != top.st_dev) continue;
        total += static_cast<uint64_t>(st.st_blocks) * 512;
        if (!S_ISDIR(st.st_mode)) continue;
        auto d = open_at(store.fd.get(), n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
        if (!d) return std::unexpected(std::move(d.error()).context(where));
        auto b = tree_bytes(d->get(), where, top.st_dev, seen);
        if (!b) return b;
        total += *b;
    }
    return total;
}

Error earlier_recovery_refusal(const Store& store, const EarlierFiles& f, const std::string& refused)
{
    const std::string file = store.path() + "/" + kEarlierProgressFile;
    // The script that wrote progress (find_earlier_files): never ours.
    const std::string finish = f.script ? "('" + store.path() + "/" + *f.script + " --resume')"
                                        : "with the earlier upgrade-recovery.sh --resume (it is not on the partition)";
    return Error{ErrorKind::RecoveryInProgress, 0,
                 "a recovery by the earlier upgrade-recovery.sh is in progress on " + store.path() + " (" + file +
                     (f.progress->empty() ? std::string() : ": " + *f.progress) + "): " + refused + "; finish it " +
                     finish + " or, if it was given up, remove " + file};
}

Result<> check_no_earlier_recovery(const Store& store, const std::string& refused)
{
    auto f = find_earlier_files(store);
    if (!f) return std::unexpected(std::move(f.error()).context("cannot tell whether a recovery is in progress"));
    if (f->progress) return std::unexpected(earlier_recovery_refusal(store, *f, refused));
    return {};
}

std::string earlier_backup_note(const Store& store, const EarlierFiles& f, std::optional<uint64_t> bytes)
{
    std::vector<std::string> paths;
    for (const auto& n : f.backup)
        paths.push_back(sh_word(store.path() + "/" + n));
    return "the recovery partition holds a backup of the earlier upgrade-recovery.sh (" + join(f.backup, ", ") +
           (bytes ? ", " + human_size(*bytes) : std::string()) +
           "), which upgrade-recovery neither uses nor removes; once a backup of upgrade-recovery verifies, remove "
           "it: 'rm -rf " +
           join(paths, " ") + "'";
}

Result<bool> keep_earlier_script(const Store& store)
{
    auto in_place = earlier_script_in_place(store);
    if (!in_place || !*in_place) return in_place;
    auto kept = present(store, kEarlierScriptKept);
    if (!kept) return std::unexpected(kept.error());
    if (*kept) return false; // the first one kept stays: it matches the old backup
    if (::renameat(store.fd.get(), kCompatScriptName, store.fd.get(), kEarlierScriptKept) < 0)
        return fail_errno("keep the earlier " + store.path() + "/" + kCompatScriptName + " as " + kEarlierScriptKept);
    UR_TRY(fsync_fd(store.fd.get(), store.path()));
    return true;
}

} // namespace ur
