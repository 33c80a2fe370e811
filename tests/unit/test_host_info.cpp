#include "host_info.hpp"
#include "process.hpp"

#include <catch2/catch.hpp>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace ur;
namespace fs = std::filesystem;

namespace
{

struct Root {
    std::string path;
    Root()
    {
        char t[] = "/tmp/ur-test-host-XXXXXX";
        REQUIRE(mkdtemp(t));
        path = t;
    }
    ~Root() { fs::remove_all(path); }
    void write(const std::string& abs, const std::string& text) const
    {
        fs::create_directories(fs::path(path + abs).parent_path());
        std::ofstream f(path + abs);
        f << text;
    }
};

// A self-signed certificate valid for `days`, cert and key in one PEM file like kubelet's.
void make_cert(const std::string& file, int days)
{
    Command c;
    c.argv = {"openssl",
              "req",
              "-x509",
              "-newkey",
              "ec",
              "-pkeyopt",
              "ec_paramgen_curve:prime256v1",
              "-nodes",
              "-subj",
              "/CN=system:node:test",
              "-days",
              std::to_string(days),
              "-keyout",
              file + ".key",
              "-out",
              file + ".crt"};
    auto r = run_checked(c);
    REQUIRE(r);
    std::ifstream crt(file + ".crt"), key(file + ".key");
    std::ofstream out(file);
    out << crt.rdbuf() << key.rdbuf();
    fs::remove(file + ".crt");
    fs::remove(file + ".key");
}

std::string rfc3339_days_from_now(int days)
{
    time_t t = ::time(nullptr) + static_cast<time_t>(days) * 86400;
    struct tm tm;
    gmtime_r(&t, &tm);
    char buf[32];
    strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
    return buf;
}

} // namespace

TEST_CASE("certificate expiry is the earliest NotAfter of the kubelet client and server certs")
{
    Root r;
    fs::create_directories(r.path + "/var/lib/kubelet/pki");
    make_cert(r.path + "/var/lib/kubelet/pki/kubelet-client-2024-01-01-00-00-00.pem", 30);
    make_cert(r.path + "/var/lib/kubelet/pki/kubelet-server-2024-01-01-00-00-00.pem", 10);
    // kubelet's links are absolute: they must resolve inside the root.
    fs::create_symlink("/var/lib/kubelet/pki/kubelet-client-2024-01-01-00-00-00.pem",
                       r.path + "/var/lib/kubelet/pki/kubelet-client-current.pem");
    fs::create_symlink("/var/lib/kubelet/pki/kubelet-server-2024-01-01-00-00-00.pem",
                       r.path + "/var/lib/kubelet/pki/kubelet-server-current.pem");

    auto rec = read_openshift_info(Config{}, r.path);
    REQUIRE(rec.cert_expiry.size() == 20);
    CHECK(rec.cert_expiry.back() == 'Z');
    CHECK(rec.cert_expiry[10] == 'T');
    // openssl counts from "now"; the date may roll over during the test, so allow the next day.
    std::string day = rec.cert_expiry.substr(0, 10);
    CHECK((day == rfc3339_days_from_now(10) || day == rfc3339_days_from_now(11)));

    // Only the client cert: its expiry.
    fs::remove(r.path + "/var/lib/kubelet/pki/kubelet-server-current.pem");
    auto rec2 = read_openshift_info(Config{}, r.path);
    std::string day2 = rec2.cert_expiry.substr(0, 10);
    CHECK((day2 == rfc3339_days_from_now(30) || day2 == rfc3339_days_from_now(31)));
}

TEST_CASE("expired certificates: a warning only once the backup's expiry has passed")
{
    BackupMetadata m;
    m.id = "20240501T100000Z";
    const std::time_t now = 1714557600;                  // 2024-05-01T10:00:00Z
    CHECK(expired_certificates_warning(m, now).empty()); // unknown
    m.openshift.cert_expiry = "2024-05-01T10:00:01Z";
    CHECK(expired_certificates_warning(m, now).empty());
    m.openshift.cert_expiry = "2024-05-01T10:00:00Z";
    CHECK(expired_certificates_warning(m, now).empty()); // not yet past
    m.openshift.cert_expiry = "not a time";
    CHECK(expired_certificates_warning(m, now).empty());
    m.openshift.cert_expiry = "2024-05-01T09:59:59Z";
    auto w = expired_certificates_warning(m, now);
    CHECK_THAT(w, Catch::StartsWith("the kubelet certificates in backup 20240501T100000Z expired at "
                                    "2024-05-01T09:59:59Z: "));
    CHECK_THAT(w, Catch::Contains("oc adm certificate approve"));
}

TEST_CASE("no certificates: expiry unknown")
{
    Root r;
    auto rec = read_openshift_info(Config{}, r.path);
    CHECK(rec.cert_expiry.empty());
    r.write("/var/lib/kubelet/pki/kubelet-client-current.pem", "not a pem\n");
    CHECK(read_openshift_info(Config{}, r.path).cert_expiry.empty());
}

TEST_CASE("OpenShift version from the currentconfig annotation, else os-release, else unknown with a reason")
{
    Root r;
    auto unknown = read_openshift_info(Config{}, r.path);
    CHECK(unknown.version.empty());
    CHECK_THAT(unknown.version_source, Catch::StartsWith("unknown"));
    CHECK_THAT(unknown.version_source, Catch::Contains("currentconfig"));
    CHECK_THAT(unknown.version_source, Catch::Contains("os-release"));

    // RHCOS: /etc/os-release is a link into /usr/lib.
    r.write("/usr/lib/os-release", "NAME=\"Red Hat Enterprise Linux CoreOS\"\nID=\"rhcos\"\n"
                                   "VERSION=\"415.92.202402201450-0\"\nOPENSHIFT_VERSION=\"4.15\"\n"
                                   "RHEL_VERSION=\"9.2\"\n");
    fs::create_directories(r.path + "/etc");
    fs::create_symlink("../usr/lib/os-release", r.path + "/etc/os-release");
    auto osr = read_openshift_info(Config{}, r.path);
    CHECK(osr.version == "4.15");
    CHECK_THAT(osr.version_source, Catch::Contains("OPENSHIFT_VERSION"));

    r.write("/etc/machine-config-daemon/currentconfig",
            R"({"metadata": {"name": "rendered-master-1", "annotations": {
                 "machineconfiguration.openshift.io/generated-by-controller-version": "abc",
                 "machineconfiguration.openshift.io/release-image-version": "4.15.3"}},
               "spec": {"config": {}}})");
    auto mc = read_openshift_info(Config{}, r.path);
    CHECK(mc.version == "4.15.3");
    CHECK_THAT(mc.version_source, Catch::Contains("release-image-version"));
    CHECK(mc.release_image.empty());

    // A bootstrap CVO manifest names the release image.
    r.write("/etc/kubernetes/manifests/bootstrap-cluster-version-operator-pod.yaml",
            "spec:\n  containers:\n  - args:\n    - start\n"
            "    - --release-image=quay.io/openshift-release-dev/ocp-release@sha256:abcd\n");
    auto img = read_openshift_info(Config{}, r.path);
    CHECK(img.release_image == "quay.io/openshift-release-dev/ocp-release@sha256:abcd");

    // A non-RHCOS os-release says why it is no help.
    Root deb;
    deb.write("/etc/os-release", "ID=debian\nVERSION_ID=\"12\"\n");
    auto d = read_openshift_info(Config{}, deb.path);
    CHECK(d.version.empty());
    CHECK_THAT(d.version_source, Catch::Contains("no OPENSHIFT_VERSION"));
}

TEST_CASE("check_backup_tools looks inside the copied trees")
{
    Root s;
    OpenShiftRecord rec;
    check_backup_tools(rec, s.path);
    CHECK_FALSE(rec.has_cluster_restore);
    CHECK_FALSE(rec.has_etcd_scripts);

    s.write("/usrlocal/bin/cluster-restore.sh", "#!/bin/sh\n");
    s.write("/etc/kubernetes/static-pod-resources/etcd-certs/configmaps/etcd-scripts/etcd.env", "X=1\n");
    check_backup_tools(rec, s.path);
    CHECK(rec.has_cluster_restore);
    CHECK(rec.has_etcd_scripts);
}

TEST_CASE("etc excludes come from column 2 of /etc/tmpfiles.d/*.conf")
{
    Root r;
    auto none = compute_etc_excludes(r.path);
    REQUIRE(none);
    CHECK(*none == std::vector<std::string>{".updated", "kubernetes/manifests"});

    r.write("/etc/tmpfiles.d/a.conf", "# comment /etc/commented\n"
                                      "\n"
                                      "   \n"
                                      "d /etc/kubernetes/cni 0755 root root - -\n"
                                      "L+ /etc/resolv.conf - - - - ../run/systemd/resolve/stub-resolv.conf\n"
                                      "f /var/lib/not-etc 0644\n"
                                      "d /etc 0755\n"
                                      "d /etcetera/x 0755\n"
                                      "C /etc/pki/ca-trust/ - - - -\n"
                                      "z \"/etc/with space/file\" 0644\n"
                                      "f %E/specifier-etc 0644\n"
                                      "f /etc/machine-%m.conf 0644\n"
                                      "f /etc/100%%.conf 0644\n"
                                      "d %S/not-etc 0755\n"
                                      "d /etc/dup 0755\n"
                                      "d\t/etc/dup\t0755\r\n");
    r.write("/etc/tmpfiles.d/b.conf", "d /etc/from-b 0700\n");
    r.write("/etc/tmpfiles.d/ignored.txt", "d /etc/not-a-conf 0700\n");
    auto ex = compute_etc_excludes(r.path);
    REQUIRE(ex);
    CHECK(*ex == std::vector<std::string>{".updated", "100%.conf", "dup", "from-b", "kubernetes/cni",
                                          "kubernetes/manifests", "machine-*.conf", "pki/ca-trust", "resolv.conf",
                                          "specifier-etc", "with space/file"});
}

TEST_CASE("machine-id: only a valid one is known, and only two known, different ones mean another installation")
{
    Root t;
    fs::create_directories(t.path + "/etc");
    auto put = [&](const std::string& text) { std::ofstream(t.path + "/etc/machine-id", std::ios::trunc) << text; };
    CHECK(machine_id_of(t.path).empty()); // none
    put("uninitialized\n");               // systemd's first boot
    CHECK(machine_id_of(t.path).empty());
    put("0123456789ABCDEF0123456789abcdef\n"); // not lowercase hex
    CHECK(machine_id_of(t.path).empty());
    put("0123456789abcdef0123456789abcdef\n");
    CHECK(machine_id_of(t.path) == "0123456789abcdef0123456789abcdef");

    BackupMetadata m;
    m.id = "20240501T120000Z";
    CHECK(other_installation_problem(m, t.path).empty()); // an older backup: not known
    m.machine_id = "0123456789abcdef0123456789abcdef";
    CHECK(other_installation_problem(m, t.path).empty()); // the same
    m.machine_id = "fedcba9876543210fedcba9876543210";
    CHECK_THAT(other_installation_problem(m, t.path),
               Catch::Contains("backup 20240501T120000Z was taken on another installation (its /etc/machine-id is "
                               "fedcba9876543210fedcba9876543210, this root's is 0123456789abcdef0123456789abcdef)"));
    put("uninitialized\n"); // this root's not known: not refused
    CHECK(other_installation_problem(m, t.path).empty());
}

TEST_CASE("an upgrade-recovery process that exited is gone before its parent reaps it")
{
    int up[2], down[2];
    REQUIRE(::pipe(up) == 0);
    REQUIRE(::pipe(down) == 0);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        // Named as the CLI is; waits until the parent closes its end, then exits.
        ::prctl(PR_SET_NAME, "upgrade-recovery");
        ::close(down[1]);
        char c = 1;
        if (::write(up[1], &c, 1) != 1) ::_exit(1);
        while (::read(down[0], &c, 1) > 0) {
        }
        ::_exit(0);
    }
    ::close(up[1]);
    ::close(down[0]);
    char c = 0;
    REQUIRE(::read(up[0], &c, 1) == 1);
    const std::string boot = read_boot_id();
    CHECK(upgrade_recovery_process_running(child, boot));
    CHECK_FALSE(upgrade_recovery_process_running(child, "another-boot"));
    ::close(down[1]);
    // Exited, not reaped: a zombie that still has its comm.
    siginfo_t si{};
    REQUIRE(::waitid(P_PID, static_cast<id_t>(child), &si, WEXITED | WNOWAIT) == 0);
    CHECK_FALSE(upgrade_recovery_process_running(child, boot));
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK_FALSE(upgrade_recovery_process_running(child, boot));
    ::close(up[0]);
}
