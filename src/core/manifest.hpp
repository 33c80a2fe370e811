// The manifest: one line per file of a generation, in walk order, streamed so
// memory stays flat however large the tree. Format (docs/architecture.md):
//
//   # upgrade-recovery manifest 1
//   <path> <type> <mode> <uid> <gid> <size> <mtime> <rdev> <ino> <ctime> <flags> <sha256|-> <link|-> <xattrs|->
//   <target|->
//   ...
//   # end <count>
//
// Fields are separated by one space; bytes outside 0x21..0x7e and "%", ",", "="
// are written as %XX, so names with spaces, newlines or non-UTF-8 bytes round
// trip. "-" stands for an empty field. <ino>/<ctime> are the source's, used
// only to recognise unchanged files for sharing with the next generation.
#pragma once

#include "error.hpp"

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ur
{

enum class FileType : char {
    Dir = 'd',
    Reg = 'f',
    Link = 'l',
    Chr = 'c',
    Blk = 'b',
    Fifo = 'p',
    Sock = 's',
};

std::optional<FileType> file_type_from_mode(unsigned mode);
unsigned file_type_to_mode(FileType t); // S_IFxxx

struct Xattr {
    std::string name;
    std::string value;
    bool operator==(const Xattr&) const = default;
};

enum EntryFlags : uint32_t {
    kChangedDuringCopy = 1, // kept changing through every retry; the copy is of the last read
    kMountPoint = 2,        // another filesystem was mounted here; recorded as an empty directory
    kLinkLeader = 4,        // first name of a hard-link group; later names carry its path in <link>
};

struct Entry {
    std::string path; // relative to the generation: "etc/hosts"; a tree root is "etc"
    FileType type = FileType::Reg;
    uint32_t mode = 0; // permission bits (07777)
    uint32_t uid = 0;
    uint32_t gid = 0;
    uint64_t size = 0;
    int64_t mtime_sec = 0;
    uint32_t mtime_nsec = 0;
    uint64_t rdev = 0;
    uint64_t ino = 0;
    int64_t ctime_sec = 0;
    uint32_t ctime_nsec = 0;
    uint32_t flags = 0;
    std::string digest;        // sha256 hex of the content (regular files)
    std::string link;          // hard link: path of the first entry of its group
    std::vector<Xattr> xattrs; // sorted by name
    std::string target;        // symlink target
};

// Order of the walk: component by component, bytes compared unsigned, so a
// directory's children follow it directly ("a", "a/b", "a-b"). Both the
// walker and every merge of a tree with a manifest rely on this order.
int compare_paths(const std::string& a, const std::string& b);

std::string escape_field(const std::string& s);
Result<std::string> unescape_field(std::string_view s);

std::string format_entry(const Entry& e);
Result<Entry> parse_entry(std::string_view line);

class ManifestWriter
{
  public:
    // Writes to an fd it owns; call finish() to write the trailer and get the sha256.
    explicit ManifestWriter(int fd);
    ~ManifestWriter();
    Result<> add(const Entry& e);
    Result<std::string> finish(); // returns the sha256 of the whole file
    uint64_t count() const { return count_; }

  private:
    Result<> flush();
    int fd_;
    std::string buf_;
    uint64_t count_ = 0;
    struct HashState;
    std::unique_ptr<HashState> hash_;
};

// Sequential reader; next() returns nullopt at the end (after checking the trailer).
class ManifestReader
{
  public:
    static Result<ManifestReader> open(int dirfd, const std::string& path);
    ManifestReader(ManifestReader&&) noexcept;
    ManifestReader& operator=(ManifestReader&&) noexcept;
    ~ManifestReader();

    Result<std::optional<Entry>> next();
    const std::string& sha256() const { return sha_; } // valid once next() returned nullopt

  private:
    ManifestReader() = default;
    Result<bool> read_line(std::string& line);
    FILE* f_ = nullptr;
    uint64_t count_ = 0;
    bool done_ = false;
    std::string sha_;
    struct HashState;
    std::unique_ptr<HashState> hash_;
};

} // namespace ur
