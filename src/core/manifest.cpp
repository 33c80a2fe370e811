#include "manifest.hpp"

#include "digest.hpp"
#include "fd.hpp"

#include <charconv>
#include <fcntl.h>
#include <sys/stat.h>

namespace ur
{

namespace
{
constexpr const char* kHeader = "# upgrade-recovery manifest 1";
constexpr const char* kTrailer = "# end ";
} // namespace

std::optional<FileType> file_type_from_mode(unsigned mode)
{
    switch (mode & S_IFMT) {
    case S_IFDIR: return FileType::Dir;
    case S_IFREG: return FileType::Reg;
    case S_IFLNK: return FileType::Link;
    case S_IFCHR: return FileType::Chr;
    case S_IFBLK: return FileType::Blk;
    case S_IFIFO: return FileType::Fifo;
    case S_IFSOCK: return FileType::Sock;
    }
    return std::nullopt;
}

unsigned file_type_to_mode(FileType t)
{
    switch (t) {
    case FileType::Dir: return S_IFDIR;
    case FileType::Reg: return S_IFREG;
    case FileType::Link: return S_IFLNK;
    case FileType::Chr: return S_IFCHR;
    case FileType::Blk: return S_IFBLK;
    case FileType::Fifo: return S_IFIFO;
    case FileType::Sock: return S_IFSOCK;
    }
    return 0;
}

int compare_paths(const std::string& a, const std::string& b)
{
    size_t n = a.size() < b.size() ? a.size() : b.size();
    for (size_t i = 0; i < n; i++) {
        unsigned char x = static_cast<unsigned char>(a[i]);
        unsigned char y = static_cast<unsigned char>(b[i]);
        if (x == y) continue;
        // '/' sorts before every byte a name can hold: children come right after their parent.
        if (x == '/') return -1;
        if (y == '/') return 1;
        return x < y ? -1 : 1;
    }
    if (a.size() == b.size()) return 0;
    return a.size() < b.size() ? -1 : 1;
}

std::string escape_field(const std::string& s)
{
    if (s.empty()) return "-";
    if (s == "-") return "%2D";
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    out.reserve(s.size());
    for (unsigned char c : s) {
        if (c <= 0x20 || c >= 0x7f || c == '%' || c == ',' || c == '=') {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

Result<std::string> unescape_field(std::string_view s)
{
    if (s == "-") return std::string();
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size(); i++) {
        if (s[i] != '%') {
            out += s[i];
            continue;
        }
        if (i + 2 >= s.size()) return fail(ErrorKind::Corrupt, "truncated escape");
        int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
        if (h < 0 || l < 0) return fail(ErrorKind::Corrupt, "bad escape");
        out += static_cast<char>(h * 16 + l);
        i += 2;
    }
    return out;
}

static void append_num(std::string& out, uint64_t v)
{
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
}

static void append_time(std::string& out, int64_t sec, uint32_t nsec)
{
    char buf[48];
    int n = snprintf(buf, sizeof buf, "%lld.%09u", static_cast<long long>(sec), nsec);
    out.append(buf, static_cast<size_t>(n));
}

std::string format_entry(const Entry& e)
{
    std::string out;
    out.reserve(160 + e.path.size());
    out += escape_field(e.path);
    out += ' ';
    out += static_cast<char>(e.type);
    char mode[16];
    snprintf(mode, sizeof mode, " %04o ", e.mode);
    out += mode;
    append_num(out, e.uid);
    out += ' ';
    append_num(out, e.gid);
    out += ' ';
    append_num(out, e.size);
    out += ' ';
    append_time(out, e.mtime_sec, e.mtime_nsec);
    out += ' ';
    append_num(out, e.rdev);
    out += ' ';
    append_num(out, e.ino);
    out += ' ';
    append_time(out, e.ctime_sec, e.ctime_nsec);
    out += ' ';
    append_num(out, e.flags);
    out += ' ';
    out += e.digest.empty() ? "-" : e.digest;
    out += ' ';
    out += escape_field(e.link);
    out += ' ';
    if (e.xattrs.empty()) {
        out += '-';
    } else {
        bool first = true;
        for (const auto& x : e.xattrs) {
            if (!first) out += ',';
            first = false;
            out += escape_field(x.name);
            out += '=';
            // An empty value is legal for an xattr; "-" would read back as empty too.
            out += escape_field(x.value);
        }
    }
    out += ' ';
    out += escape_field(e.target);
    out += '\n';
    return out;
}

namespace
{

template <class T> bool parse_num(std::string_view s, T& out)
{
    auto r = std::from_chars(s.data(), s.data() + s.size(), out);
    return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

bool parse_time(std::string_view s, int64_t& sec, uint32_t& nsec)
{
    size_t dot = s.find('.');
    if (dot == std::string_view::npos) return false;
    return parse_num(s.substr(0, dot), sec) && parse_num(s.substr(dot + 1), nsec) && nsec < 1000000000u;
}

} // namespace

Result<Entry> parse_entry(std::string_view line)
{
    std::string_view f[15];
    size_t n = 0, pos = 0;
    for (;;) {
        size_t sp = line.find(' ', pos);
        if (n == 15) return fail(ErrorKind::Corrupt, "manifest line has more than 15 fields");
        f[n++] = line.substr(pos, sp == std::string_view::npos ? std::string_view::npos : sp - pos);
        if (sp == std::string_view::npos) break;
        pos = sp + 1;
    }
    if (n != 15) return fail(ErrorKind::Corrupt, "manifest line has " + std::to_string(n) + " fields, expected 15");
    Entry e;
    auto path = unescape_field(f[0]);
    if (!path || path->empty()) return fail(ErrorKind::Corrupt, "manifest line has a bad path");
    // Relative, and every component a name: restore opens each one below the last,
    // and ".." (or "/" at the start) would lead it out of the tree.
    for (size_t pos = 0; pos <= path->size();) {
        size_t slash = std::min(path->find('/', pos), path->size());
        std::string_view c(path->data() + pos, slash - pos);
        if (c.empty() || c == "." || c == "..")
            return fail(ErrorKind::Corrupt, "manifest entry '" + *path + "' is not a relative path of plain names");
        pos = slash + 1;
    }
    e.path = std::move(*path);
    if (f[1].size() != 1 || !file_type_from_mode(file_type_to_mode(static_cast<FileType>(f[1][0]))))
        return fail(ErrorKind::Corrupt, "manifest entry '" + e.path + "' has a bad type");
    e.type = static_cast<FileType>(f[1][0]);
    unsigned mode = 0;
    auto mr = std::from_chars(f[2].data(), f[2].data() + f[2].size(), mode, 8);
    bool ok = mr.ec == std::errc() && mr.ptr == f[2].data() + f[2].size() && mode <= 07777;
    e.mode = mode;
    ok = ok && parse_num(f[3], e.uid) && parse_num(f[4], e.gid) && parse_num(f[5], e.size) &&
         parse_time(f[6], e.mtime_sec, e.mtime_nsec) && parse_num(f[7], e.rdev) && parse_num(f[8], e.ino) &&
         parse_time(f[9], e.ctime_sec, e.ctime_nsec) && parse_num(f[10], e.flags);
    if (!ok) return fail(ErrorKind::Corrupt, "manifest entry '" + e.path + "' has a bad number");
    if (f[11] != "-") {
        if (f[11].size() != 64) return fail(ErrorKind::Corrupt, "manifest entry '" + e.path + "' has a bad digest");
        e.digest = std::string(f[11]);
    }
    auto link = unescape_field(f[12]);
    auto target = unescape_field(f[14]);
    if (!link || !target) return fail(ErrorKind::Corrupt, "manifest entry '" + e.path + "' has a bad field");
    e.link = std::move(*link);
    e.target = std::move(*target);
    if (f[13] != "-") {
        std::string_view xs = f[13];
        while (!xs.empty()) {
            size_t comma = xs.find(',');
            std::string_view item = xs.substr(0, comma);
            size_t eq = item.find('=');
            if (eq == std::string_view::npos)
                return fail(ErrorKind::Corrupt, "manifest entry '" + e.path + "' has a bad xattr");
            auto name = unescape_field(item.substr(0, eq));
            auto value = unescape_field(item.substr(eq + 1));
            if (!name || !value) return fail(ErrorKind::Corrupt, "manifest entry '" + e.path + "' has a bad xattr");
            e.xattrs.push_back({std::move(*name), std::move(*value)});
            if (comma == std::string_view::npos) break;
            xs = xs.substr(comma + 1);
        }
    }
    return e;
}

struct ManifestWriter::HashState {
    Sha256 h;
};

ManifestWriter::ManifestWriter(int fd) : fd_(fd), hash_(std::make_unique<HashState>())
{
    buf_ = std::string(kHeader) + "\n";
}

ManifestWriter::~ManifestWriter()
{
    if (fd_ >= 0) ::close(fd_);
}

Result<> ManifestWriter::flush()
{
    hash_->h.update(buf_.data(), buf_.size());
    UR_TRY_CTX(write_all(fd_, buf_.data(), buf_.size()), "write manifest");
    buf_.clear();
    return {};
}

Result<> ManifestWriter::add(const Entry& e)
{
    buf_ += format_entry(e);
    count_++;
    if (buf_.size() >= (1 << 20)) return flush();
    return {};
}

Result<std::string> ManifestWriter::finish()
{
    buf_ += kTrailer + std::to_string(count_) + "\n";
    UR_TRY(flush());
    if (::fsync(fd_) < 0) return fail_errno("fsync manifest");
    ::close(fd_);
    fd_ = -1;
    return hash_->h.hex();
}

struct ManifestReader::HashState {
    Sha256 h;
};

ManifestReader::ManifestReader(ManifestReader&& o) noexcept
    : f_(o.f_), count_(o.count_), done_(o.done_), sha_(std::move(o.sha_)), hash_(std::move(o.hash_))
{
    o.f_ = nullptr;
}

ManifestReader& ManifestReader::operator=(ManifestReader&& o) noexcept
{
    if (this != &o) {
        if (f_) fclose(f_);
        f_ = o.f_;
        o.f_ = nullptr;
        count_ = o.count_;
        done_ = o.done_;
        sha_ = std::move(o.sha_);
        hash_ = std::move(o.hash_);
    }
    return *this;
}

ManifestReader::~ManifestReader()
{
    if (f_) fclose(f_);
}

Result<ManifestReader> ManifestReader::open(int dirfd, const std::string& path)
{
    auto fd = open_regular_at(dirfd, path, O_NOFOLLOW);
    if (!fd) {
        // Every manifest belongs to a generation that exists: one missing, or a
        // symlink in its place, is damage (exit 7), not a failure to read.
        Error e = std::move(fd.error()).context("manifest");
        if (e.err == ENOENT || e.err == ELOOP) e.kind = ErrorKind::Corrupt;
        return std::unexpected(std::move(e));
    }
    ManifestReader r;
    r.f_ = fdopen(fd->get(), "r");
    if (!r.f_) return fail_errno("fdopen manifest");
    (void)fd->release(); // owned by the FILE now
    r.hash_ = std::make_unique<HashState>();
    std::string line;
    auto got = r.read_line(line);
    if (!got) return std::unexpected(got.error());
    if (!*got || line != kHeader) return fail(ErrorKind::Corrupt, "manifest '" + path + "' has no valid header");
    return r;
}

Result<bool> ManifestReader::read_line(std::string& line)
{
    char* buf = nullptr;
    size_t cap = 0;
    ssize_t n = getline(&buf, &cap, f_);
    if (n < 0) {
        free(buf);
        if (ferror(f_)) return fail_errno("read manifest");
        return false;
    }
    hash_->h.update(buf, static_cast<size_t>(n));
    if (n == 0 || buf[n - 1] != '\n') {
        free(buf);
        return fail(ErrorKind::Corrupt, "manifest is truncated (last line incomplete)");
    }
    line.assign(buf, static_cast<size_t>(n - 1));
    free(buf);
    return true;
}

Result<std::optional<Entry>> ManifestReader::next()
{
    if (done_) return std::optional<Entry>();
    std::string line;
    auto got = read_line(line);
    if (!got) return std::unexpected(got.error());
    if (!*got) return fail(ErrorKind::Corrupt, "manifest is truncated (no end line)");
    if (line.rfind(kTrailer, 0) == 0) {
        uint64_t n = 0;
        if (!parse_num(std::string_view(line).substr(6), n) || n != count_)
            return fail(ErrorKind::Corrupt,
                        "manifest end line does not match its " + std::to_string(count_) + " entries");
        std::string extra;
        auto more = read_line(extra);
        if (!more) return std::unexpected(more.error());
        if (*more) return fail(ErrorKind::Corrupt, "manifest has data after its end line");
        done_ = true;
        sha_ = hash_->h.hex();
        return std::optional<Entry>();
    }
    auto e = parse_entry(line);
    if (!e) return std::unexpected(std::move(e.error()).context("manifest line " + std::to_string(count_ + 2)));
    count_++;
    return std::optional<Entry>(std::move(*e));
}

} // namespace ur
