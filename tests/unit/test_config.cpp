#include "config.hpp"
#include "fd.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sys/stat.h>

using namespace ur;
namespace fs = std::filesystem;

static Result<Config> parse(const std::string& text)
{
    return parse_config_text(Config{}, text, "t.toml");
}

TEST_CASE("defaults need no file")
{
    auto c = parse("");
    REQUIRE(c);
    CHECK(c->partition_label == "recovery");
    CHECK(c->mount_point == "/var/recovery");
    CHECK(c->trees.size() == 3);
    CHECK(c->tree("kubelet")->path == "/var/lib/kubelet");
    CHECK(c->tree("usrlocal")->path == "/usr/local");
    CHECK_FALSE(c->allow_plain_directory);
    CHECK(c->retention == 2);
    CHECK(c->free_space_margin == (1ull << 30));
}

TEST_CASE("keys override defaults")
{
    auto c = parse(R"(
[partition]
label = "rec2"
mount_point = "/srv/rec"
allow_plain_directory = true
[backup]
retention = 5
free_space_margin = "10GiB"
timeout = 480
[[backup.trees]]
name = "etc"
path = "/etc"
exclude = ["kubernetes/manifests", "*.swp"]
[recovery]
wipe_images = true
systemctl = "offline"
)");
    REQUIRE(c);
    CHECK(c->partition_label == "rec2");
    CHECK(c->mount_point == "/srv/rec");
    CHECK(c->allow_plain_directory);
    CHECK(c->retention == 5);
    CHECK(c->free_space_margin == 10ull * (1ull << 30));
    CHECK(c->backup_timeout == 480);
    REQUIRE(c->trees.size() == 1);
    CHECK(c->trees[0].exclude == std::vector<std::string>{"kubernetes/manifests", "*.swp"});
    CHECK(c->wipe_images);
    CHECK(c->systemctl_mode == "offline");
}

TEST_CASE("unknown keys are errors naming file, line and column")
{
    auto c = parse("[backup]\nretention = 3\nretension = 4\n");
    REQUIRE_FALSE(c);
    CHECK(c.error().kind == ErrorKind::BadConfig);
    CHECK(c.error().message.find("t.toml:3:1") != std::string::npos);
    CHECK(c.error().message.find("retension") != std::string::npos);

    auto s = parse("[nosuchsection]\nx = 1\n");
    REQUIRE_FALSE(s);
    CHECK(s.error().message.find("t.toml:1:") != std::string::npos);
    CHECK(s.error().message.find("nosuchsection") != std::string::npos);

    auto t = parse("[[backup.trees]]\nname = \"etc\"\npath = \"/etc\"\nexlude = []\n");
    REQUIRE_FALSE(t);
    CHECK(t.error().message.find("t.toml:4:1") != std::string::npos);
}

TEST_CASE("wrong types are errors naming the position")
{
    auto c = parse("[backup]\nretention = \"three\"\n");
    REQUIRE_FALSE(c);
    CHECK(c.error().kind == ErrorKind::BadConfig);
    CHECK(c.error().message.find("t.toml:2:") != std::string::npos);
    CHECK(c.error().message.find("backup.retention") != std::string::npos);

    CHECK_FALSE(parse("[partition]\nallow_plain_directory = 1\n"));
    CHECK_FALSE(parse("[partition]\nlabel = 5\n"));
    CHECK_FALSE(parse("[backup]\nretention = -1\n"));
    CHECK_FALSE(parse("[backup]\nfree_space_margin = \"10 parsecs\"\n"));
    CHECK_FALSE(parse("[ostree]\nmode = \"maybe\"\n"));
    CHECK_FALSE(parse("partition = 3\n"));
}

TEST_CASE("invalid values are refused")
{
    // Named where they are, like a wrong type.
    auto r0 = parse("[backup]\ntimeout = 5\nretention = 0\n");
    REQUIRE_FALSE(r0);
    CHECK(r0.error().message.find("t.toml:3:") != std::string::npos);
    CHECK(r0.error().message.find("backup.retention must be at least 1") != std::string::npos);
    auto rel = parse("[partition]\nmount_point = \"relative\"\n");
    REQUIRE_FALSE(rel);
    CHECK(rel.error().message.find("t.toml:2:") != std::string::npos);
    CHECK(rel.error().message.find("partition.mount_point must be an absolute path") != std::string::npos);
    // W8: every deadline of the recovery and the etcd snapshot is at least a second
    // (0 would be none); backup.timeout 0 is "none", documented.
    for (const char* key :
         {"recovery.stop_timeout", "recovery.container_restart_timeout", "recovery.redeploy_timeout",
          "recovery.restore_script_timeout", "recovery.pull_timeout", "recovery.api_request_timeout", "etcd.timeout"}) {
        std::string k = key;
        auto dot = k.find('.');
        auto r = parse("[" + k.substr(0, dot) + "]\n" + k.substr(dot + 1) + " = 0\n");
        INFO(key);
        REQUIRE_FALSE(r);
        CHECK(r.error().kind == ErrorKind::BadConfig);
        CHECK(r.error().message.find(k + " must be at least 1") != std::string::npos);
        REQUIRE(parse("[" + k.substr(0, dot) + "]\n" + k.substr(dot + 1) + " = 1\n"));
    }
    REQUIRE(parse("[backup]\ntimeout = 0\n"));
    CHECK_FALSE(parse("[[backup.trees]]\nname = \"a/b\"\npath = \"/x\"\n"));
    CHECK_FALSE(parse("[[backup.trees]]\nname = \"x\"\npath = \"rel\"\n"));
    CHECK_FALSE(
        parse("[[backup.trees]]\nname = \"x\"\npath = \"/x\"\n[[backup.trees]]\nname = \"x\"\npath = \"/y\"\n"));
    // A tree is backups/<id>/<name>: never one of the generation's own names, nor
    // the tree the backup adds for the MachineConfig files.
    for (const char* own : {"manifest", "metadata.toml", "cluster", "extras"}) {
        auto r = parse(std::string("[[backup.trees]]\nname = \"") + own + "\"\npath = \"/x\"\n");
        INFO(own);
        REQUIRE_FALSE(r);
        CHECK(r.error().kind == ErrorKind::BadConfig);
        CHECK(r.error().message.find("t.toml:1:") != std::string::npos);
        CHECK(r.error().message.find(std::string("backup.trees name '") + own + "'") != std::string::npos);
    }
}

// Named at its position like every other value a key does not allow; it named the file only.
TEST_CASE("an empty backup.trees is refused where it is written")
{
    for (const char* text : {"[backup]\nretention = 2\ntrees = []\n", "[partition]\n[backup]\ntrees = [ ]\n"}) {
        INFO(text);
        auto r = parse(text);
        REQUIRE_FALSE(r);
        CHECK(r.error().kind == ErrorKind::BadConfig);
        CHECK(r.error().message.find("t.toml:3:9: backup.trees must name at least one tree") != std::string::npos);
    }
}

// A tree inside another (or the same path twice) was copied twice into each
// backup and restored twice by a recovery.
TEST_CASE("overlapping backup.trees are refused at the later tree, naming both")
{
    const std::string etc = "[[backup.trees]]\nname = \"etc\"\npath = \"/etc\"\n";
    struct Case {
        std::string second, message;
    };
    for (const auto& [second, message] : std::vector<Case>{
             {"[[backup.trees]]\nname = \"kube\"\npath = \"/etc/kubernetes\"\n",
              "t.toml:4:1: backup.trees 'kube' (/etc/kubernetes) lies inside the tree 'etc' (/etc, at t.toml:1:1)"},
             {"[[backup.trees]]\nname = \"again\"\npath = \"/etc/\"\n",
              "t.toml:4:1: backup.trees 'again' (/etc/) is the same directory as the tree 'etc' (/etc, at t.toml:1:1)"},
             {"[[backup.trees]]\nname = \"root\"\npath = \"/\"\n",
              "t.toml:4:1: backup.trees 'root' (/) holds the tree 'etc' (/etc, at t.toml:1:1)"},
             {"[[backup.trees]]\nname = \"dots\"\npath = \"/usr/../etc/./pki\"\n",
              "'dots' (/usr/../etc/./pki) lies inside the tree 'etc'"},
         }) {
        INFO(second);
        auto r = parse(etc + second);
        REQUIRE_FALSE(r);
        CHECK(r.error().kind == ErrorKind::BadConfig);
        CHECK(r.error().message.find(message) != std::string::npos);
        CHECK(r.error().message.find("copied and restored twice") != std::string::npos);
    }
    // Only by whole components: /etcd is beside /etc.
    auto beside = parse(etc + "[[backup.trees]]\nname = \"etcd\"\npath = \"/etcd\"\n");
    REQUIRE(beside);
    CHECK(beside->trees.size() == 2);
    // The built-in trees hold none of each other.
    const auto d = Config::default_trees();
    for (size_t i = 0; i < d.size(); i++)
        for (size_t j = i + 1; j < d.size(); j++) {
            INFO(d[i].path << " " << d[j].path);
            CHECK_FALSE(path_within(lexical_path(d[i].path), lexical_path(d[j].path)));
            CHECK_FALSE(path_within(lexical_path(d[j].path), lexical_path(d[i].path)));
        }
}

TEST_CASE("watchdog.max_boots: 3 by default, 1 to 1000, named where it is wrong")
{
    auto d = parse("");
    REQUIRE(d);
    CHECK(d->watchdog_max_boots == 3);
    auto c = parse("[watchdog]\nmax_boots = 5\n");
    REQUIRE(c);
    CHECK(c->watchdog_max_boots == 5);
    for (const char* v : {"0", "1001"}) {
        auto r = parse(std::string("[watchdog]\nmax_boots = ") + v + "\n");
        INFO(v);
        REQUIRE_FALSE(r);
        CHECK(r.error().kind == ErrorKind::BadConfig);
        CHECK(r.error().message.find("t.toml:2:") != std::string::npos);
        CHECK(r.error().message.find("watchdog.max_boots must be at") != std::string::npos);
    }
    auto s = parse("[watchdog]\nmax_boots = \"3\"\n");
    REQUIRE_FALSE(s);
    CHECK(s.error().message.find("t.toml:2:") != std::string::npos);
    CHECK(s.error().message.find("watchdog.max_boots must be a non-negative integer") != std::string::npos);
    // A non-negative integer above the limit is told the limit, not that it is negative or no integer.
    auto big = parse("[backup]\nretention = 99999999999\n");
    REQUIRE_FALSE(big);
    CHECK(big.error().kind == ErrorKind::BadConfig);
    CHECK(big.error().message.find("t.toml:2:") != std::string::npos);
    CHECK(big.error().message.find("backup.retention must be at most 2147483647") != std::string::npos);
    auto u = parse("[watchdog]\nmax_boot = 3\n");
    REQUIRE_FALSE(u);
    CHECK(u.error().message.find("t.toml:2:1: unknown key 'max_boot' in [watchdog]") != std::string::npos);
}

TEST_CASE("a syntax error names its position")
{
    auto c = parse("[backup]\nretention = = 3\n");
    REQUIRE_FALSE(c);
    CHECK(c.error().kind == ErrorKind::BadConfig);
    CHECK(c.error().message.find("t.toml:2:") != std::string::npos);
}

TEST_CASE("sizes")
{
    CHECK(*parse_size("0") == 0);
    CHECK(*parse_size("512") == 512);
    CHECK(*parse_size("4KiB") == 4096);
    CHECK(*parse_size("3M") == 3ull << 20);
    CHECK(*parse_size("10GiB") == 10ull << 30);
    CHECK_FALSE(parse_size(""));
    CHECK_FALSE(parse_size("GiB"));
    CHECK_FALSE(parse_size("1 GiB"));
    CHECK_FALSE(parse_size("99999999999999999999999"));
    // Within 64 bits as a number, beyond them with the unit: an error, not a wrapped value.
    CHECK(*parse_size("16777215TiB") == 16777215ull << 40);
    CHECK_FALSE(parse_size("16777216TiB"));
    CHECK_FALSE(parse_size("16777217TiB"));
}

TEST_CASE("files: vendor, /etc file and drop-ins override in order")
{
    fs::path root = fs::temp_directory_path() / ("ur-config-test-" + std::to_string(getpid()));
    fs::remove_all(root);
    fs::create_directories(root / "usr/lib/upgrade-recovery");
    fs::create_directories(root / "etc/upgrade-recovery/config.d");
    std::ofstream(root / "usr/lib/upgrade-recovery/config.toml")
        << "[backup]\nretention = 7\n[daemon]\nidle_exit = 5\n";
    std::ofstream(root / "etc/upgrade-recovery/config.toml") << "[backup]\nretention = 4\n";
    std::ofstream(root / "etc/upgrade-recovery/config.d/10-a.toml") << "[partition]\nlabel = \"a\"\n";
    std::ofstream(root / "etc/upgrade-recovery/config.d/20-b.toml") << "[partition]\nlabel = \"b\"\n";
    std::ofstream(root / "etc/upgrade-recovery/config.d/ignored.conf") << "garbage = \n";
    auto c = load_config({root.string(), std::nullopt});
    REQUIRE(c);
    CHECK(c->retention == 4);         // /etc beats vendor
    CHECK(c->idle_exit == 5);         // vendor beats built-in
    CHECK(c->partition_label == "b"); // later drop-in wins

    // A later file's array or [[backup.trees]] list replaces the earlier one whole
    // (upgrade-recovery.conf(5)): nothing is merged.
    std::ofstream(root / "etc/upgrade-recovery/config.d/21-trees.toml")
        << "[[backup.trees]]\nname = \"etc\"\npath = \"/etc\"\nexclude = [\"a\", \"b\"]\n"
           "[[backup.trees]]\nname = \"opt\"\npath = \"/opt\"\n";
    std::ofstream(root / "etc/upgrade-recovery/config.d/22-trees.toml")
        << "[[backup.trees]]\nname = \"etc\"\npath = \"/etc\"\nexclude = [\"c\"]\n";
    auto t = load_config({root.string(), std::nullopt});
    REQUIRE(t);
    REQUIRE(t->trees.size() == 1);
    CHECK(t->trees[0].name == "etc");
    CHECK(t->trees[0].exclude == std::vector<std::string>{"c"});
    // So trees of two files never overlap each other: /etc/kubernetes replaces /etc.
    std::ofstream(root / "etc/upgrade-recovery/config.d/23-trees.toml")
        << "[[backup.trees]]\nname = \"kube\"\npath = \"/etc/kubernetes\"\n";
    auto k = load_config({root.string(), std::nullopt});
    REQUIRE(k);
    REQUIRE(k->trees.size() == 1);
    CHECK(k->trees[0].path == "/etc/kubernetes");
    // One file's list is checked whole, named at its place in that file.
    std::ofstream(root / "etc/upgrade-recovery/config.d/23-trees.toml")
        << "[[backup.trees]]\nname = \"kube\"\npath = \"/etc/kubernetes\"\n"
           "[[backup.trees]]\nname = \"etc\"\npath = \"/etc\"\n";
    auto o = load_config({root.string(), std::nullopt});
    REQUIRE_FALSE(o);
    CHECK(o.error().kind == ErrorKind::BadConfig);
    CHECK(o.error().message.find("23-trees.toml:4:1: backup.trees 'etc' (/etc) holds the tree 'kube' "
                                 "(/etc/kubernetes, at ") != std::string::npos);
    fs::remove(root / "etc/upgrade-recovery/config.d/23-trees.toml");
    fs::remove(root / "etc/upgrade-recovery/config.d/21-trees.toml");
    fs::remove(root / "etc/upgrade-recovery/config.d/22-trees.toml");

    std::ofstream(root / "etc/upgrade-recovery/config.d/30-bad.toml") << "[backup]\nbogus = 1\n";
    auto bad = load_config({root.string(), std::nullopt});
    REQUIRE_FALSE(bad);
    CHECK(bad.error().message.find("30-bad.toml:2:1") != std::string::npos);

    auto missing = load_config({root.string(), std::string("/nonexistent/config.toml")});
    REQUIRE_FALSE(missing);
    CHECK(missing.error().kind == ErrorKind::BadConfig);

    // A drop-in directory that cannot be read is an error, not "no drop-ins".
    fs::remove_all(root / "etc/upgrade-recovery/config.d");
    std::ofstream(root / "etc/upgrade-recovery/config.d") << "not a directory\n";
    auto unreadable = load_config({root.string(), std::nullopt});
    REQUIRE_FALSE(unreadable);
    CHECK(unreadable.error().kind == ErrorKind::BadConfig);
    CHECK(unreadable.error().message.find("drop-in directory") != std::string::npos);
    fs::remove(root / "etc/upgrade-recovery/config.d");
    CHECK(load_config({root.string(), std::nullopt})); // absent: fine
    fs::remove_all(root);
}

// A name that exists but cannot be read is an error, never "no file": skipping it
// would run with settings nobody chose (and a FIFO must not hang every command).
TEST_CASE("files that exist but cannot be read are errors; symlinks resolve inside the root")
{
    test::TempDir t("ur-config-links");
    fs::path root = t.path;
    fs::create_directories(root / "etc/upgrade-recovery/config.d");
    fs::create_directories(root / "srv");
    auto load = [&] { return load_config({root.string(), std::nullopt}); };
    auto says = [](const Result<Config>& r, const std::string& what) {
        return !r && r.error().kind == ErrorKind::BadConfig && r.error().message.find(what) != std::string::npos;
    };

    SECTION("a dangling /etc config.toml")
    {
        fs::create_symlink("/nonexistent/config.toml", root / "etc/upgrade-recovery/config.toml");
        CHECK(says(load(), "etc/upgrade-recovery/config.toml': it is a symlink to a file that does not exist"));
    }
    SECTION("a dangling drop-in")
    {
        fs::create_symlink("missing.toml", root / "etc/upgrade-recovery/config.d/50-x.toml");
        CHECK(says(load(), "50-x.toml': it is a symlink to a file that does not exist"));
    }
    SECTION("a FIFO drop-in is refused, not read")
    {
        REQUIRE(mkfifo((root / "etc/upgrade-recovery/config.d/50-fifo.toml").c_str(), 0600) == 0);
        CHECK(says(load(), "50-fifo.toml': not a regular file"));
    }
    SECTION("an absolute symlink is resolved inside the root, not on the running system")
    {
        std::ofstream(root / "srv/site.toml") << "[partition]\nlabel = \"site\"\n";
        fs::create_symlink("/srv/site.toml", root / "etc/upgrade-recovery/config.d/50-site.toml");
        auto c = load();
        REQUIRE(c);
        CHECK(c->partition_label == "site");
        fs::create_symlink("/srv/site.toml", root / "etc/upgrade-recovery/config.toml");
        CHECK(load());
    }
}

TEST_CASE("every documented key is known to the loader")
{
    auto keys = config_keys();
    CHECK(std::find(keys.begin(), keys.end(), "partition.label") != keys.end());
    CHECK(std::find(keys.begin(), keys.end(), "backup.trees.exclude") != keys.end());
    CHECK(std::find(keys.begin(), keys.end(), "recovery.redeploy_timeout") != keys.end());
}

TEST_CASE("a NUL in a string is refused (every path use of ours would end at it)")
{
    // "/etc\0/ur" passed the check that the store is not inside a tree, and the
    // system calls then used "/etc": the backup copied itself until it crashed.
    auto p = parse("[partition]\nmount_point = \"/etc\\u0000/ur\"\n");
    REQUIRE_FALSE(p);
    CHECK(p.error().kind == ErrorKind::BadConfig);
    CHECK(p.error().message.find("t.toml:2:") != std::string::npos);
    CHECK(p.error().message.find("without NUL") != std::string::npos);
    auto t = parse("[[backup.trees]]\nname = \"etc\"\npath = \"/etc\"\nexclude = [\"a\\u0000b\"]\n");
    REQUIRE_FALSE(t);
    CHECK(t.error().message.find("without NUL") != std::string::npos);
}

// Each is taken under the root prefix: a relative or empty one was accepted here
// and failed later without a position ("start '/root/ /...': Permission denied"),
// or never, naming nothing.
TEST_CASE("host paths must be absolute, command and name keys non-empty, named where they are")
{
    struct Case {
        const char* section;
        const char* key;
        const char* value;
        const char* says;
    };
    for (const Case& k : std::initializer_list<Case>{
             {"ostree", "sysroot", "sysroot", "ostree.sysroot must be an absolute path"},
             {"ostree", "sysroot", "", "ostree.sysroot must be an absolute path"},
             {"etcd", "backup_script", "", "etcd.backup_script must be an absolute path"},
             {"etcd", "backup_script", "usr/local/bin/cluster-backup.sh",
              "etcd.backup_script must be an absolute path"},
             {"etcd", "restore_script", "cluster-restore.sh", "etcd.restore_script must be an absolute path"},
             {"etcd", "static_pod_resources", "", "etcd.static_pod_resources must be an absolute path"},
             {"etcd", "cacert", "ca.crt", "etcd.cacert must be an absolute path, or empty"},
             {"etcd", "cert", "peer.crt", "etcd.cert must be an absolute path, or empty"},
             {"etcd", "key", "peer.key", "etcd.key must be an absolute path, or empty"},
             {"etcd", "etcdctl", "", "etcd.etcdctl must be a command name or an absolute path"},
             {"etcd", "etcdctl", "bin/etcdctl", "etcd.etcdctl must be a command name or an absolute path"},
             {"machineconfig", "current_config", "etc/machine-config-daemon/currentconfig",
              "machineconfig.current_config must be an absolute path"},
             {"recovery", "kubeconfig", "", "recovery.kubeconfig must be an absolute path"},
             {"recovery", "crictl", "", "recovery.crictl must be a command name or an absolute path"},
             {"recovery", "oc", "", "recovery.oc must be a command name or an absolute path"},
             {"recovery", "oc", "./oc", "recovery.oc must be a command name or an absolute path"},
             {"partition", "label", "", "partition.label must be a non-empty string"},
         }) {
        INFO(k.section << "." << k.key << " = \"" << k.value << "\"");
        auto r = parse(std::string("[") + k.section + "]\n# line 2\n" + k.key + " = \"" + k.value + "\"\n");
        REQUIRE_FALSE(r);
        CHECK(r.error().kind == ErrorKind::BadConfig);
        CHECK(r.error().message.find(std::string("t.toml:3:") + std::to_string(std::strlen(k.key) + 4)) !=
              std::string::npos);
        CHECK(r.error().message.find(k.says) != std::string::npos);
    }
    // What stays valid: absolute paths, bare command names, empty TLS files (not
    // passed to etcdctl), an empty partition.filesystem (documented: any).
    auto ok = parse("[partition]\nlabel = \"rec\"\nfilesystem = \"\"\n"
                    "[ostree]\nsysroot = \"/sysroot\"\n"
                    "[etcd]\nbackup_script = \"/opt/b.sh\"\nrestore_script = \"/opt/r.sh\"\ncacert = \"\"\n"
                    "cert = \"/c\"\nkey = \"\"\netcdctl = \"/usr/bin/etcdctl\"\nstatic_pod_resources = \"/spr\"\n"
                    "[machineconfig]\ncurrent_config = \"/cc\"\n"
                    "[recovery]\nkubeconfig = \"/kc\"\ncrictl = \"crictl\"\noc = \"/usr/bin/oc\"\n");
    INFO((ok ? "" : ok.error().message));
    REQUIRE(ok);
    CHECK(ok->filesystem.empty());
    CHECK(ok->cluster_restore_script == "/opt/r.sh");
    CHECK(ok->etcd_cert == "/c");
}

// Excludes are matched against paths relative to the tree's root: "/etc/hostname",
// "../x" and "" were accepted and left nothing out, silently.
TEST_CASE("exclude patterns that can never match are refused, with the right form")
{
    auto bad = [](const std::string& pattern, const std::string& tree = "/etc") {
        return parse("[[backup.trees]]\nname = \"t\"\npath = \"" + tree + "\"\nexclude = [\"ok/*\", \"" + pattern +
                     "\"]\n");
    };
    auto abs = bad("/etc/hostname");
    REQUIRE_FALSE(abs);
    CHECK(abs.error().kind == ErrorKind::BadConfig);
    // The position is the pattern's own (the array's second element).
    CHECK(abs.error().message.find("t.toml:4:20:") != std::string::npos);
    CHECK(abs.error().message.find("backup.trees.exclude: '/etc/hostname' starts with '/'") != std::string::npos);
    CHECK(abs.error().message.find("patterns are relative to the tree's path /etc") != std::string::npos);
    CHECK(abs.error().message.find("write \"hostname\"") != std::string::npos);

    auto outside = bad("/hostname");
    REQUIRE_FALSE(outside);
    CHECK(outside.error().message.find("'/hostname' starts with '/'") != std::string::npos);
    CHECK(outside.error().message.find("\"kubernetes/manifests\" leaves out /etc/kubernetes/manifests") !=
          std::string::npos);

    for (const char* dots : {"../x", "a/../b", "a/..", ".."}) {
        auto r = bad(dots, "/var/lib/kubelet");
        INFO(dots);
        REQUIRE_FALSE(r);
        CHECK(r.error().message.find("t.toml:4:20:") != std::string::npos);
        CHECK(r.error().message.find("has a '..' component") != std::string::npos);
        CHECK(r.error().message.find("relative to the tree's path /var/lib/kubelet (\"some/dir\" leaves out "
                                     "/var/lib/kubelet/some/dir)") != std::string::npos);
    }
    auto empty = bad("");
    REQUIRE_FALSE(empty);
    CHECK(empty.error().message.find("t.toml:4:20:") != std::string::npos);
    CHECK(empty.error().message.find("an empty pattern matches nothing") != std::string::npos);

    // Dots that are no ".." component, and ordinary globs, are fine.
    auto good = parse("[[backup.trees]]\nname = \"t\"\npath = \"/etc\"\n"
                      "exclude = [\"..data\", \"a..b/*\", \".updated\", \"kubernetes/manifests\", \"*.swp\"]\n");
    INFO((good ? "" : good.error().message));
    REQUIRE(good);
    CHECK(good->trees[0].exclude.size() == 5);
}

TEST_CASE("[images]: off by default; its keys read and checked where they are wrong")
{
    Config d;
    CHECK_FALSE(d.images_backup);
    CHECK(d.skopeo == "skopeo");
    CHECK(d.images_storage_conf.empty());
    CHECK(d.images_authfile == "/var/lib/kubelet/config.json");
    CHECK(d.images_timeout == 600);
    auto ok = parse("[images]\nbackup = true\nskopeo = \"/usr/bin/skopeo\"\nstorage_conf = \"/etc/s.conf\"\n"
                    "authfile = \"\"\ntimeout = 30\n");
    INFO((ok ? "" : ok.error().message));
    REQUIRE(ok);
    CHECK(ok->images_backup);
    CHECK(ok->skopeo == "/usr/bin/skopeo");
    CHECK(ok->images_storage_conf == "/etc/s.conf");
    CHECK(ok->images_authfile.empty());
    CHECK(ok->images_timeout == 30);
    struct Bad {
        const char* text;
        const char* where;
        const char* what;
    };
    for (const Bad& b : {Bad{"[images]\n\nbackup = \"yes\"\n", "t.toml:3:10", "images.backup must be true or false"},
                         Bad{"[images]\nskopeo = \"bin/skopeo\"\n", "t.toml:2:10",
                             "images.skopeo must be a command name or an absolute path"},
                         Bad{"[images]\nstorage_conf = \"storage.conf\"\n", "t.toml:2:16",
                             "images.storage_conf must be an absolute path, or empty"},
                         Bad{"[images]\ntimeout = 0\n", "t.toml:2:11", "images.timeout must be at least 1"},
                         Bad{"[images]\nregistry = \"x\"\n", "t.toml:2:1", "unknown"}}) {
        INFO(b.text);
        auto r = parse(b.text);
        REQUIRE_FALSE(r);
        CHECK(r.error().kind == ErrorKind::BadConfig);
        CHECK(r.error().message.find(b.where) != std::string::npos);
        CHECK(r.error().message.find(b.what) != std::string::npos);
    }
    // The layout's directory in a generation is no tree's.
    auto tree = parse("[[backup.trees]]\nname = \"images\"\npath = \"/var/images\"\n");
    REQUIRE_FALSE(tree);
    CHECK(tree.error().message.find("control-plane images") != std::string::npos);
}
