// metrics: the store's state in the Prometheus text format (metrics_text.hpp).
#include "cli.hpp"
#include "fd.hpp"
#include "metrics_text.hpp"
#include "store_status.hpp"

#include <fcntl.h>

#include <cstdio>

namespace ur::cli
{

namespace
{

// Replace FILE atomically: node_exporter reads the old or the new file, never half
// of one (the temporary's name does not end in .prom, so it is never read).
Result<> write_textfile(const std::string& path, const std::string& text)
{
    const auto slash = path.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
    const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
    if (name.empty()) return fail(ErrorKind::InvalidArgs, "--output " + path + " names a directory, not a file");
    auto dfd = open_at(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY);
    if (!dfd)
        return std::unexpected(std::move(dfd.error())
                                   .context("the directory of --output " + path +
                                            " (node_exporter's --collector.textfile.directory) must exist"));
    // The temporary's name alone would not say where.
    UR_TRY_CTX(write_file_atomic_at(dfd->get(), name, text, 0644), "write --output " + path);
    return {};
}

} // namespace

int cmd_metrics(const Args& args)
{
    auto f = parse_flags(args.params, {}, {"--output"}, 0);
    if (!f) return kExitUsage;
    if (args.json) {
        usage_error("upgrade-recovery: metrics prints the Prometheus text format; 'status --json' is the JSON form\n");
        return kExitUsage;
    }
    // A store that cannot be read still gives a file (upgrade_recovery_store_up 0):
    // a stale one would go on saying what was true before.
    std::optional<Error> store_err;
    std::string text;
    int rc = 0;
    auto session = open_session(args, StoreAccess::Read, false);
    Result<StoreStatus> st = session ? read_store_status((*session)->store, (*session)->cfg.watchdog_max_boots)
                                     : std::unexpected(session.error());
    if (!st) {
        store_err = st.error();
        text = metrics_text(nullptr, std::nullopt);
    } else {
        auto usage = store_usage((*session)->store);
        if (!usage) log::warning("cannot tell the store's size: " + usage.error().message);
        text = metrics_text(&*st, usage ? std::optional<StoreUsage>(*usage) : std::nullopt);
        // Flagged in the textfile as upgrade_recovery_unreadable; said as status says it.
        if (auto problem = st->problem()) {
            log::warning(st->first_error() ? "part of the store is unreadable: " + st->problem_message() +
                                                 " (see 'upgrade-recovery status')"
                                           : st->problem_message());
            rc = exit_code(*problem);
        }
    }
    if (auto out = f->value("--output")) {
        if (auto w = write_textfile(*out, text); !w) return report_error(args, w.error());
    } else {
        fputs(text.c_str(), stdout);
    }
    if (store_err) return report_error(args, *store_err);
    return rc;
}

} // namespace ur::cli
