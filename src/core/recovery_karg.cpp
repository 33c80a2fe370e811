#include "recovery_karg.hpp"

#include "fd.hpp"
#include "hostfs.hpp"
#include "text.hpp"

#include <algorithm>
#include <fcntl.h>

namespace ur
{

namespace
{
bool is_space(char c)
{
    return c == ' ' || c == '\n' || c == '\t';
}

// The `options` lines of a BLS entry, joined (the specification lets it appear more than once).
std::string entry_options(std::string_view text)
{
    std::string out;
    for (std::string_view line : split_lines(text)) {
        while (!line.empty() && (line.front() == ' ' || line.front() == '\t'))
            line.remove_prefix(1);
        if (line.starts_with("options") && line.size() > 7 && (line[7] == ' ' || line[7] == '\t')) {
            out += line.substr(7);
            out += ' ';
        }
    }
    return out;
}
} // namespace

bool cmdline_requests_recovery(std::string_view cmdline)
{
    size_t pos = 0;
    while (pos < cmdline.size()) {
        while (pos < cmdline.size() && is_space(cmdline[pos]))
            pos++;
        size_t end = pos;
        while (end < cmdline.size() && !is_space(cmdline[end]))
            end++;
        if (cmdline.substr(pos, end - pos) == kRecoveryKarg) return true;
        pos = end;
    }
    return false;
}

Result<std::vector<std::string>> boot_entries_requesting_recovery(const std::string& root)
{
    const std::string dir_path = "/boot/loader/entries";
    std::vector<std::string> found;
    auto dir = open_host(root, dir_path, O_RDONLY | O_DIRECTORY);
    if (!dir) {
        if (dir.error().err == ENOENT || dir.error().err == ENOTDIR) return found;
        return std::unexpected(std::move(dir.error()).context("boot loader entries " + dir_path));
    }
    auto entries = read_dir(dir->get());
    if (!entries) return std::unexpected(std::move(entries.error()).context("boot loader entries " + dir_path));
    for (const auto& e : *entries) {
        if (!e.name.ends_with(".conf")) continue;
        auto text = read_file_at(dir->get(), e.name, 1 << 20);
        if (!text)
            return std::unexpected(std::move(text.error()).context("boot loader entry " + dir_path + "/" + e.name));
        if (cmdline_requests_recovery(entry_options(*text))) found.push_back(dir_path + "/" + e.name);
    }
    std::sort(found.begin(), found.end());
    return found;
}

std::string persistent_karg_warning(const std::string& root)
{
    return persistent_karg_warning(boot_entries_requesting_recovery(root));
}

std::string persistent_karg_warning(const Result<std::vector<std::string>>& found)
{
    const std::string karg(kRecoveryKarg);
    if (!found)
        return "whether a boot entry keeps the kernel argument " + karg + " cannot be told (" + found.error().message +
               "); a kept one makes a boot restore the latest backup";
    if (found->empty()) return {};
    return "the kernel argument " + karg + " is kept in the boot entr" + (found->size() == 1 ? "y " : "ies ") +
           join(*found, ", ") +
           ": a boot from it restores the latest backup over everything changed since, an upgrade included, unless "
           "the recovery of that backup completed or was abandoned. It is meant for one boot, typed at the boot menu: "
           "remove it "
           "from the MachineConfig's kernelArguments when one sets it, else from the options line of each entry named "
           "(an edit of the file; on RHCOS 'mount -o remount,rw /boot' first). Not with rpm-ostree kargs: its new "
           "deployment changes the deployment list the platform rollback works on, and the old entry keeps it";
}

} // namespace ur
