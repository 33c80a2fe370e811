// Load for upgrade-recoveryd: N clients, each with its own bus connection on its own
// thread, calling Properties.Get(State), Properties.GetAll(Manager) and ListBackups
// in a loop, timing every call. Used by test_dbus_load.sh (every call must answer)
// and bench/dbus_latency.sh (the latency figures).
//
//   dbus-load-client [--clients N] [--seconds S] [--until-job PATH] [--json]
//
// Exit 0 when every call got a reply, 1 otherwise.
#include <systemd/sd-bus.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace
{

constexpr const char* kName = "io.openshift.UpgradeRecovery1";
constexpr const char* kPath = "/io/openshift/UpgradeRecovery1";
constexpr const char* kIface = "io.openshift.UpgradeRecovery1.Manager";
constexpr const char* kKinds[] = {"Get(State)", "GetAll", "ListBackups"};

struct ClientResult {
    std::vector<double> ms[3];
    unsigned errors = 0;
    std::string first_error;
};

std::atomic<bool> stop{false};

void client(ClientResult& out)
{
    sd_bus* bus = nullptr;
    if (sd_bus_open_system(&bus) < 0) {
        out.errors++;
        out.first_error = "cannot connect";
        return;
    }
    for (unsigned i = 0; !stop.load(); i++) {
        unsigned kind = i % 3;
        sd_bus_error err = SD_BUS_ERROR_NULL;
        sd_bus_message* reply = nullptr;
        auto t0 = std::chrono::steady_clock::now();
        int r;
        if (kind == 0)
            r = sd_bus_call_method(bus, kName, kPath, "org.freedesktop.DBus.Properties", "Get", &err, &reply, "ss",
                                   kIface, "State");
        else if (kind == 1)
            r = sd_bus_call_method(bus, kName, kPath, "org.freedesktop.DBus.Properties", "GetAll", &err, &reply, "s",
                                   kIface);
        else
            r = sd_bus_call_method(bus, kName, kPath, kIface, "ListBackups", &err, &reply, "");
        auto t1 = std::chrono::steady_clock::now();
        if (r < 0) {
            if (out.errors++ == 0)
                out.first_error = std::string(kKinds[kind]) + ": " + (err.message ? err.message : strerror(-r));
        } else {
            out.ms[kind].push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
        }
        sd_bus_message_unref(reply);
        sd_bus_error_free(&err);
    }
    sd_bus_flush_close_unref(bus);
}

bool job_finished(sd_bus* bus, const std::string& path)
{
    char* s = nullptr;
    if (sd_bus_get_property_string(bus, kName, path.c_str(), "io.openshift.UpgradeRecovery1.Job", "State", nullptr,
                                   &s) < 0)
        return true;
    std::string st = s;
    free(s);
    return st == "Succeeded" || st == "Timeout" || st == "Cancelled" || st == "Error";
}

double pct(std::vector<double>& v, double p)
{
    if (v.empty()) return 0;
    size_t i = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
}

} // namespace

int main(int argc, char** argv)
{
    unsigned clients = 8;
    double seconds = 10;
    std::string until_job;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        if (a == "--clients" && i + 1 < argc)
            clients = static_cast<unsigned>(std::atoi(argv[++i]));
        else if (a == "--seconds" && i + 1 < argc)
            seconds = std::atof(argv[++i]);
        else if (a == "--until-job" && i + 1 < argc)
            until_job = argv[++i];
        else if (a == "--json")
            json = true;
        else {
            std::fprintf(stderr, "usage: %s [--clients N] [--seconds S] [--until-job PATH] [--json]\n", argv[0]);
            return 2;
        }
    }
    if (clients == 0) clients = 1;

    std::vector<ClientResult> results(clients);
    std::vector<std::thread> threads;
    auto t0 = std::chrono::steady_clock::now();
    for (auto& r : results)
        threads.emplace_back(client, std::ref(r));

    sd_bus* watch = nullptr;
    if (!until_job.empty() && sd_bus_open_system(&watch) < 0) watch = nullptr;
    bool job_ended = false;
    while (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < seconds) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        if (watch && job_finished(watch, until_job)) {
            job_ended = true;
            break;
        }
    }
    stop = true;
    for (auto& t : threads)
        t.join();
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    sd_bus_flush_close_unref(watch);

    std::vector<double> all[4];
    unsigned errors = 0;
    std::string first_error;
    for (auto& r : results) {
        for (int k = 0; k < 3; k++) {
            all[k].insert(all[k].end(), r.ms[k].begin(), r.ms[k].end());
            all[3].insert(all[3].end(), r.ms[k].begin(), r.ms[k].end());
        }
        errors += r.errors;
        if (first_error.empty()) first_error = r.first_error;
    }
    const char* names[] = {kKinds[0], kKinds[1], kKinds[2], "all"};
    if (json)
        std::printf("{\"clients\": %u, \"seconds\": %.2f, \"job_ended\": %s, \"errors\": %u, \"calls\": {", clients,
                    elapsed, job_ended ? "true" : "false", errors);
    for (int k = 0; k < 4; k++) {
        std::sort(all[k].begin(), all[k].end());
        double p50 = pct(all[k], 50), p90 = pct(all[k], 90), p99 = pct(all[k], 99),
               mx = all[k].empty() ? 0 : all[k].back();
        if (json)
            std::printf(
                "%s\"%s\": {\"n\": %zu, \"p50_ms\": %.3f, \"p90_ms\": %.3f, \"p99_ms\": %.3f, \"max_ms\": %.3f}",
                k ? ", " : "", names[k], all[k].size(), p50, p90, p99, mx);
        else
            std::printf("%-12s n=%-7zu p50=%7.3f ms  p90=%7.3f ms  p99=%7.3f ms  max=%8.3f ms\n", names[k],
                        all[k].size(), p50, p90, p99, mx);
    }
    if (json)
        std::printf("}}\n");
    else
        std::printf("%u clients, %.1f s%s, %u errors%s%s\n", clients, elapsed,
                    job_ended ? " (until the job ended)" : "", errors, errors ? ": " : "", first_error.c_str());
    return errors ? 1 : 0;
}
