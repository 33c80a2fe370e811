#include "initrd_mark.hpp"

#include "fd.hpp"
#include "log.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace ur
{

namespace
{
constexpr const char* kMarkFile = "initrd";
}

bool in_initramfs()
{
    return ::access("/etc/initrd-release", F_OK) == 0;
}

void mark_initrd_ran(const std::string& run_dir, const std::string& version)
{
    if (::mkdir(run_dir.c_str(), 0755) != 0 && errno != EEXIST) {
        log::warning("cannot create " + run_dir + ": " + std::strerror(errno));
        return;
    }
    auto dir = open_at(AT_FDCWD, run_dir, O_RDONLY | O_DIRECTORY);
    if (!dir) {
        log::warning(dir.error().message);
        return;
    }
    if (auto w = write_file_atomic_at(dir->get(), kMarkFile, "upgrade-recovery " + version + "\n"); !w)
        log::warning("cannot mark that the initramfs module ran: " + w.error().message);
}

std::string initrd_module_warning(const std::string& run_dir)
{
    const std::string mark = run_dir + "/" + kMarkFile;
    if (::access(mark.c_str(), F_OK) == 0) return {};
    return "this boot's initramfs did not run upgrade-recovery (no " + mark +
           "): an armed recovery runs at the next boot only if that boot's initramfs has the dracut module "
           "90upgrade-recovery and the kernel command line has no upgrade_recovery=off; check that lsinitrd lists "
           "upgrade-recovery in the next deployment's initramfs (/boot/ostree/*/initramfs-*), see "
           "upgrade-recovery-dracut(7)";
}

std::optional<std::string> initrd_module_problem(const std::string& root, const std::optional<std::string>& run_dir)
{
    if (run_dir) return initrd_module_warning(*run_dir);
    if (root != "/" || in_initramfs()) return std::nullopt;
    return initrd_module_warning(kInitrdRunDir);
}

} // namespace ur
