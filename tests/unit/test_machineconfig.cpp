#include "machineconfig.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <unistd.h>

using namespace ur;
namespace fs = std::filesystem;

namespace
{

struct Root {
    std::string path;
    Root()
    {
        char t[] = "/tmp/ur-test-mc-XXXXXX";
        REQUIRE(mkdtemp(t));
        path = t;
    }
    ~Root() { fs::remove_all(path); }
    void write(const std::string& abs, const std::string& text = "x") const
    {
        fs::create_directories(fs::path(path + abs).parent_path());
        std::ofstream f(path + abs);
        f << text;
    }
};

const char* kCurrent = "/etc/machine-config-daemon/currentconfig";

// A rendered MachineConfig the way MCO stores it: files inside and outside the trees,
// units with and without contents, dropins, a masked unit.
const char* kConfig = R"({
  "kind": "MachineConfig",
  "metadata": {"name": "rendered-master-1", "annotations": {}},
  "spec": {
    "osImageURL": "quay.io/x@sha256:0",
    "config": {
      "ignition": {"version": "3.2.0"},
      "storage": {"files": [
        {"path": "/etc/kubernetes/kubelet.conf", "contents": {"source": "data:,"}, "mode": 420},
        {"path": "/usr/local/bin/configure-ovs.sh", "contents": {"source": "data:,"}},
        {"path": "/var/lib/kubelet/config.json"},
        {"path": "/opt/vendor/agent.conf"},
        {"path": "/var/usrlocal/bin/tool"},
        {"path": "/opt/vendor/agent.conf"},
        {"path": "/opt//vendor/./missing.conf"},
        {"path": "/etc-not-etc/file"},
        {"path": "/var/lib/kubeletx/file"}
      ]},
      "systemd": {"units": [
        {"name": "kubelet.service", "enabled": true, "contents": "[Unit]\n",
         "dropins": [{"name": "10-mco-default-env.conf", "contents": "[Service]\n"},
                     {"name": "20-empty.conf", "contents": ""}]},
        {"name": "crio.service", "enabled": true},
        {"name": "masked.service", "mask": true}
      ]}
    }
  }
})";

Config config_without_etc()
{
    Config c;
    // Only usrlocal and kubelet are trees here, so /etc paths (units too) count as outside.
    c.trees = {{"usrlocal", "/usr/local", {}, true}, {"kubelet", "/var/lib/kubelet", {}, true}};
    return c;
}

} // namespace

TEST_CASE("files outside the trees are listed, sorted and unique; missing ones are reported")
{
    Root r;
    r.write(kCurrent, kConfig);
    r.write("/opt/vendor/agent.conf");
    r.write("/var/usrlocal/bin/tool");
    r.write("/etc-not-etc/file");
    r.write("/var/lib/kubeletx/file");
    Config cfg;
    auto res = read_machineconfig_files(cfg, r.path);
    REQUIRE(res);
    CHECK(res->config_present);
    CHECK(res->outside == std::vector<std::string>{"/etc-not-etc/file", "/opt/vendor/agent.conf",
                                                   "/opt/vendor/missing.conf", "/var/lib/kubeletx/file",
                                                   "/var/usrlocal/bin/tool"});
    CHECK(res->missing == std::vector<std::string>{"/opt/vendor/missing.conf"});
    CHECK(res->copy == std::vector<std::string>{"/etc-not-etc/file", "/opt/vendor/agent.conf", "/var/lib/kubeletx/file",
                                                "/var/usrlocal/bin/tool"});
}

TEST_CASE("system directories that are symlinks: files are copied by the path they really have")
{
    // RHCOS: /opt -> var/opt, /srv -> /var/srv (one relative, one absolute link).
    // A walk does not follow a symlinked directory: by the written path the file
    // would be silently left out of the backup.
    Root r;
    r.write(kCurrent, R"({"spec": {"config": {"storage": {"files": [
        {"path": "/opt/mcfile"}, {"path": "/srv/site/b.conf"}, {"path": "/cfg/kubelet/x"},
        {"path": "/plain/file"}]}}}})");
    r.write("/var/opt/mcfile");
    r.write("/var/srv/site/b.conf");
    r.write("/var/lib/kubelet/x");
    r.write("/plain/file");
    fs::create_directory_symlink("var/opt", r.path + "/opt");
    fs::create_directory_symlink("/var/srv", r.path + "/srv");
    fs::create_directory_symlink("/var/lib", r.path + "/cfg"); // lands inside the kubelet tree
    auto res = read_machineconfig_files(Config{}, r.path);
    REQUIRE(res);
    CHECK(res->outside == std::vector<std::string>{"/cfg/kubelet/x", "/opt/mcfile", "/plain/file", "/srv/site/b.conf"});
    CHECK(res->missing.empty());
    // /cfg/kubelet/x is /var/lib/kubelet/x: the kubelet tree copies it.
    CHECK(res->copy == std::vector<std::string>{"/var/opt/mcfile", "/plain/file", "/var/srv/site/b.conf"});
}

TEST_CASE("systemd units and dropins map to /etc/systemd/system paths")
{
    Root r;
    r.write(kCurrent, kConfig);
    r.write("/etc/systemd/system/kubelet.service");
    r.write("/etc/systemd/system/kubelet.service.d/10-mco-default-env.conf");
    // masked.service is missing on disk: reported, not fatal.
    auto res = read_machineconfig_files(config_without_etc(), r.path);
    REQUIRE(res);
    auto has = [&](const std::string& p) {
        return std::find(res->outside.begin(), res->outside.end(), p) != res->outside.end();
    };
    CHECK(has("/etc/systemd/system/kubelet.service"));
    CHECK(has("/etc/systemd/system/kubelet.service.d/10-mco-default-env.conf"));
    CHECK(has("/etc/systemd/system/masked.service"));
    CHECK(has("/etc/kubernetes/kubelet.conf"));
    // A unit MCO only enables (no contents) and an empty dropin are not files MCO writes.
    CHECK_FALSE(has("/etc/systemd/system/crio.service"));
    CHECK_FALSE(has("/etc/systemd/system/kubelet.service.d/20-empty.conf"));
    CHECK_FALSE(has("/usr/local/bin/configure-ovs.sh"));
    CHECK_FALSE(has("/var/lib/kubelet/config.json"));
    CHECK(std::is_sorted(res->outside.begin(), res->outside.end()));
    CHECK(std::find(res->missing.begin(), res->missing.end(), "/etc/systemd/system/masked.service") !=
          res->missing.end());
    CHECK(std::find(res->missing.begin(), res->missing.end(), "/etc/kubernetes/kubelet.conf") != res->missing.end());
}

TEST_CASE("a missing currentconfig is an empty set unless required")
{
    Root r;
    Config cfg;
    auto res = read_machineconfig_files(cfg, r.path);
    REQUIRE(res);
    CHECK_FALSE(res->config_present);
    CHECK(res->outside.empty());
    CHECK(res->missing.empty());

    cfg.machineconfig_required = true;
    auto req = read_machineconfig_files(cfg, r.path);
    REQUIRE_FALSE(req);
    CHECK(req.error().kind == ErrorKind::NotFound);
    CHECK_THAT(req.error().message, Catch::Contains("currentconfig"));
}

TEST_CASE("malformed JSON is an error, never an empty set")
{
    Root r;
    r.write(kCurrent, R"({"spec": {"config": {"storage": {"files": [{"path": "/opt/x"})");
    auto res = read_machineconfig_files(Config{}, r.path);
    REQUIRE_FALSE(res);
    CHECK(res.error().kind == ErrorKind::Corrupt);
    CHECK_THAT(res.error().message, Catch::Contains("not valid JSON"));

    r.write(kCurrent, "");
    auto empty = read_machineconfig_files(Config{}, r.path);
    REQUIRE_FALSE(empty);
    CHECK(empty.error().kind == ErrorKind::Corrupt);
}

TEST_CASE("a document of the wrong shape is an error naming the field")
{
    Root r;
    struct Case {
        const char* json;
        const char* mentions;
    };
    const Case cases[] = {
        {R"([1, 2])", "not an object"},
        {R"({"metadata": {}})", "no spec"},
        {R"({"spec": {}})", "no spec.config"},
        {R"({"spec": {"config": {"storage": {"files": {"path": "/opt/x"}}}}})", "spec.config.storage.files"},
        {R"({"spec": {"config": {"storage": {"files": [{"mode": 420}]}}}})", "files[0].path"},
        {R"({"spec": {"config": {"storage": {"files": [{"path": 7}]}}}})", "files[0].path"},
        {R"({"spec": {"config": {"storage": {"files": [{"path": "relative/x"}]}}}})", "absolute"},
        {R"({"spec": {"config": {"systemd": {"units": [{"contents": "x"}]}}}})", "units[0].name"},
        {R"({"spec": {"config": {"systemd": {"units": [{"name": "a.service", "dropins": [{}]}]}}}})",
         "dropins[0].name"},
        {R"({"spec": {"config": {"systemd": "no"}}})", "spec.config.systemd"},
    };
    for (const auto& c : cases) {
        INFO(c.json);
        r.write(kCurrent, c.json);
        auto res = read_machineconfig_files(Config{}, r.path);
        REQUIRE_FALSE(res);
        CHECK(res.error().kind == ErrorKind::Corrupt);
        CHECK_THAT(res.error().message, Catch::Contains(c.mentions));
    }
}

TEST_CASE("an unreadable currentconfig is an error")
{
    Root r;
    // A directory where the file should be: reading fails with EISDIR, not "missing".
    fs::create_directories(r.path + kCurrent);
    auto res = read_machineconfig_files(Config{}, r.path);
    REQUIRE_FALSE(res);
}

TEST_CASE("a config with no files or units yields an empty set but config_present")
{
    Root r;
    r.write(kCurrent, R"({"spec": {"config": {"ignition": {"version": "3.2.0"}}}})");
    auto res = read_machineconfig_files(Config{}, r.path);
    REQUIRE(res);
    CHECK(res->config_present);
    CHECK(res->outside.empty());
}

TEST_CASE("paths are resolved inside the root, also through absolute symlinks")
{
    Root r;
    r.write(kCurrent, R"({"spec": {"config": {"storage": {"files": [{"path": "/opt/link/file"}]}}}})");
    // /opt/link -> /srv (absolute): must resolve to <root>/srv, not the host's /srv.
    fs::create_directories(r.path + "/opt");
    fs::create_directory_symlink("/srv", r.path + "/opt/link");
    auto res = read_machineconfig_files(Config{}, r.path);
    REQUIRE(res);
    CHECK(res->missing == std::vector<std::string>{"/opt/link/file"});
    r.write("/srv/file");
    auto res2 = read_machineconfig_files(Config{}, r.path);
    REQUIRE(res2);
    CHECK(res2->missing.empty());
}
