// ur-restore-bench: time the restore engine on its own (bench only).
//
//   ur-restore-bench BACKUP_DIR TARGET_ROOT [--checksum] [--dry-run]
//   ur-restore-bench --print-etc-excludes BACKUP_DIR
//
// BACKUP_DIR is backups/<id> on the recovery partition. Runs
// ur::restore_backup() the way phase 1 does (the /etc excludes from the
// backup's metadata, the MachineConfig files the target's currentconfig names
// for W19), without stopping units or touching ostree, and prints the stats
// and the wall time of the call (which ends with a syncfs of the target).
#include "config.hpp"
#include "fd.hpp"
#include "machineconfig.hpp"
#include "metadata.hpp"
#include "restore.hpp"
#include "store.hpp"

#include <chrono>
#include <cstdio>
#include <fcntl.h>
#include <string>

namespace
{

class QuietProgress : public ur::Progress
{
  public:
    void warning(const std::string& msg) override { fprintf(stderr, "warning: %s\n", msg.c_str()); }
};

int usage()
{
    fputs("usage: ur-restore-bench BACKUP_DIR TARGET_ROOT [--checksum] [--dry-run]\n"
          "       ur-restore-bench --print-etc-excludes BACKUP_DIR\n",
          stderr);
    return 2;
}

ur::Result<ur::BackupMetadata> read_meta(const std::string& backup_dir)
{
    auto text = ur::read_file_at(AT_FDCWD, backup_dir + "/" + ur::kMetadataFile, 16 << 20);
    if (!text) return std::unexpected(text.error());
    return ur::metadata_from_toml(*text, backup_dir + "/" + ur::kMetadataFile);
}

} // namespace

int main(int argc, char** argv)
{
    if (argc < 3) return usage();
    if (std::string(argv[1]) == "--print-etc-excludes") {
        // For rsync --exclude-from: the same list, anchored at the tree root.
        auto meta = read_meta(argv[2]);
        if (!meta) {
            fprintf(stderr, "ur-restore-bench: %s\n", meta.error().message.c_str());
            return 1;
        }
        for (const auto& e : meta->etc_excludes)
            printf("/%s\n", e.c_str());
        return 0;
    }
    const std::string backup_dir = argv[1];
    ur::RestoreOptions opts;
    opts.target_root = argv[2];
    for (int i = 3; i < argc; i++) {
        std::string a = argv[i];
        if (a == "--checksum")
            opts.checksum = true;
        else if (a == "--dry-run")
            opts.dry_run = true;
        else
            return usage();
    }

    auto meta = read_meta(backup_dir);
    if (!meta) {
        fprintf(stderr, "ur-restore-bench: %s\n", meta.error().message.c_str());
        return 1;
    }
    opts.etc_excludes = meta->etc_excludes;
    opts.remove_stale_mc_files = true;
    ur::ConfigSource src;
    src.root = opts.target_root;
    if (auto cfg = ur::load_config(src); cfg) {
        if (auto mc = ur::read_machineconfig_files(*cfg, opts.target_root); mc) opts.current_mc_files = mc->outside;
    } else {
        fprintf(stderr, "warning: config of %s: %s\n", opts.target_root.c_str(), cfg.error().message.c_str());
    }

    QuietProgress progress;
    ur::CancelToken cancel;
    const auto t0 = std::chrono::steady_clock::now();
    auto st = ur::restore_backup(backup_dir, opts, progress, cancel);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!st) {
        fprintf(stderr, "ur-restore-bench: restore failed: %s\n", st.error().message.c_str());
        return 1;
    }
    printf("restore %s -> %s: %.3f s, %llu examined, %llu created, %llu rewritten, %llu metadata only, %llu deleted, "
           "%llu bytes written%s\n",
           backup_dir.c_str(), opts.target_root.c_str(), secs, static_cast<unsigned long long>(st->examined),
           static_cast<unsigned long long>(st->created), static_cast<unsigned long long>(st->updated),
           static_cast<unsigned long long>(st->metadata), static_cast<unsigned long long>(st->deleted),
           static_cast<unsigned long long>(st->bytes_written), opts.dry_run ? " (dry run)" : "");
    return 0;
}
