#include "file_copy.hpp"

#include "digest.hpp"
#include "fd.hpp"
#include "fsmeta.hpp"

#include <fcntl.h>
#include <unistd.h>

namespace ur
{

namespace
{

Result<> read_range(int in, int out, off_t from, off_t to, Buffer& buf, Sha256& h, uint64_t* written)
{
    off_t pos = from;
    while (pos < to) {
        size_t want = static_cast<size_t>(std::min<off_t>(to - pos, static_cast<off_t>(buf.size())));
        ssize_t n = ::pread(in, buf.data(), want, pos);
        if (n < 0) {
            if (errno == EINTR) continue;
            return fail_errno("read");
        }
        if (n == 0) break; // shrank meanwhile: the change check after the copy notices
        h.update(buf.data(), static_cast<size_t>(n));
        if (out >= 0) {
            const char* p = buf.data();
            size_t left = static_cast<size_t>(n);
            off_t wpos = pos;
            while (left > 0) {
                ssize_t w = ::pwrite(out, p, left, wpos);
                if (w < 0) {
                    if (errno == EINTR) continue;
                    return fail_errno("write");
                }
                p += w;
                wpos += w;
                left -= static_cast<size_t>(w);
            }
            if (written) *written += static_cast<uint64_t>(n);
        }
        pos += n;
    }
    return {};
}

// Hash (and copy when out >= 0) walking data segments; holes are hashed as zeros.
Result<std::string> stream(int in, int out, const struct stat& st, Buffer& buf, uint64_t* written)
{
    if (buf.size() < kCopyBufferSize) buf.resize(kCopyBufferSize);
    Sha256 h;
    off_t size = st.st_size;
    bool sparse = static_cast<off_t>(st.st_blocks) * 512 < size;
    if (!sparse) {
        UR_TRY(read_range(in, out, 0, size, buf, h, written));
    } else {
        off_t pos = 0;
        while (pos < size) {
            off_t data = ::lseek(in, pos, SEEK_DATA);
            if (data < 0) {
                if (errno != ENXIO) return fail_errno("seek data");
                data = size; // only a hole remains
            }
            if (data > size) data = size;
            h.update_zeros(static_cast<size_t>(data - pos));
            if (data >= size) break;
            off_t hole = ::lseek(in, data, SEEK_HOLE);
            if (hole < 0) return fail_errno("seek hole");
            if (hole > size) hole = size;
            UR_TRY(read_range(in, out, data, hole, buf, h, written));
            pos = hole;
        }
    }
    // Only when needed (a trailing hole, or a shorter source): on XFS a truncate
    // marks the file for a synchronous flush on close, which costs every copy dearly.
    if (out >= 0) {
        struct stat os;
        if (::fstat(out, &os) < 0) return fail_errno("stat copy");
        if (os.st_size != size && ::ftruncate(out, size) < 0) return fail_errno("truncate");
    }
    return h.hex();
}

bool same_version(const struct stat& a, const struct stat& b)
{
    return a.st_ino == b.st_ino && a.st_size == b.st_size && a.st_mtim.tv_sec == b.st_mtim.tv_sec &&
           a.st_mtim.tv_nsec == b.st_mtim.tv_nsec && a.st_ctim.tv_sec == b.st_ctim.tv_sec &&
           a.st_ctim.tv_nsec == b.st_ctim.tv_nsec;
}

} // namespace

Result<std::string> copy_content(int in, int out, const struct stat& st, Buffer& buf, uint64_t* written)
{
    struct stat os;
    if (::fstat(out, &os) < 0) return fail_errno("stat copy");
    if (os.st_size != 0 && ::ftruncate(out, 0) < 0) return fail_errno("truncate"); // a retry

    return stream(in, out, st, buf, written);
}

Result<std::string> hash_content(int fd, const struct stat& st, Buffer& buf)
{
    return stream(fd, -1, st, buf, nullptr);
}

Result<std::string> file_sha256(int dirfd, const std::string& name, Buffer& buf)
{
    auto fd = open_at(dirfd, name, O_RDONLY | O_NOFOLLOW);
    if (!fd) return std::unexpected(fd.error());
    struct stat st;
    if (::fstat(fd->get(), &st) < 0) return fail_errno("stat " + name);
    return hash_content(fd->get(), st, buf);
}

Result<CopiedFile> copy_regular_file(int src_dir, const std::string& name, int dst_dir, unsigned retries, Buffer& buf)
{
    CopiedFile r;
    int fd = ::openat(src_dir, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC | O_NOATIME);
    if (fd < 0 && errno == EPERM)
        fd = ::openat(src_dir, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT || errno == ELOOP || errno == ENXIO) {
            r.vanished = true;
            return r;
        }
        return fail_errno("open");
    }
    UniqueFd in(fd);
    struct stat before;
    if (::fstat(in.get(), &before) < 0) return fail_errno("stat");
    if (!S_ISREG(before.st_mode)) {
        r.vanished = true; // replaced by something else since the walk saw it
        return r;
    }
    ::posix_fadvise(in.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
    auto out = open_at(dst_dir, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
    if (!out) return std::unexpected(out.error());

    std::string digest;
    struct stat after = before;
    for (unsigned attempt = 0;; attempt++) {
        uint64_t w = 0;
        auto d = copy_content(in.get(), out->get(), before, buf, &w);
        if (!d) return std::unexpected(d.error());
        r.written += w;
        digest = std::move(*d);
        if (::fstat(in.get(), &after) < 0) return fail_errno("stat");
        if (same_version(before, after)) break;
        if (attempt >= retries) {
            r.entry.flags |= kChangedDuringCopy;
            break;
        }
        before = after;
    }
    auto xattrs = read_xattrs(in.get(), false);
    if (!xattrs) return std::unexpected(xattrs.error());
    entry_from_stat(r.entry, after);
    if (r.entry.flags & kChangedDuringCopy) {
        // The source moved under every attempt: describe exactly what was written.
        struct stat written;
        if (::fstat(out->get(), &written) < 0) return fail_errno("stat copy");
        auto d = hash_content(out->get(), written, buf);
        if (!d) return std::unexpected(d.error());
        digest = std::move(*d);
        r.entry.size = static_cast<uint64_t>(written.st_size);
    }
    r.entry.xattrs = std::move(*xattrs);
    r.entry.digest = std::move(digest);
    UR_TRY(apply_metadata(dst_dir, name, out->get(), r.entry, Inode::Fresh));
    return r;
}

} // namespace ur
