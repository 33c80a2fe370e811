#include "container_runtime.hpp"

#include "log.hpp"
#include "process.hpp"
#include "text.hpp"

#include <nlohmann/json.hpp>
#include <thread>

namespace ur
{

using nlohmann::json;

Result<std::vector<ContainerInfo>> parse_crictl_ps(std::string_view text)
{
    try {
        json o = json::parse(text);
        std::vector<ContainerInfo> out;
        if (!o.contains("containers") || o["containers"].is_null()) return out;
        for (const auto& c : o.at("containers")) {
            ContainerInfo ci;
            ci.id = c.value("id", "");
            ci.pod_id = c.value("podSandboxId", "");
            ci.state = c.value("state", "");
            if (c.contains("metadata") && c["metadata"].is_object()) ci.name = c["metadata"].value("name", "");
            // crictl prints createdAt as a string of nanoseconds; accept a number too.
            if (c.contains("createdAt")) {
                const auto& ca = c["createdAt"];
                if (ca.is_string())
                    ci.created_ns = std::strtoll(ca.get<std::string>().c_str(), nullptr, 10);
                else if (ca.is_number())
                    ci.created_ns = ca.get<int64_t>();
            }
            if (ci.id.empty()) return fail(ErrorKind::ExternalFailed, "crictl ps: a container without an id");
            out.push_back(std::move(ci));
        }
        return out;
    } catch (const json::exception& e) {
        return fail(ErrorKind::ExternalFailed, std::string("crictl ps: unreadable JSON: ") + e.what());
    }
}

Result<std::vector<ImageInfo>> parse_crictl_images(std::string_view text)
{
    auto strings = [](const json& o, const char* key) {
        std::vector<std::string> v;
        if (o.contains(key) && o[key].is_array())
            for (const auto& x : o[key])
                if (x.is_string()) v.push_back(x.get<std::string>());
        return v;
    };
    try {
        json o = json::parse(text);
        std::vector<ImageInfo> out;
        if (!o.contains("images") || o["images"].is_null()) return out;
        for (const auto& i : o.at("images")) {
            ImageInfo ii;
            ii.id = i.value("id", "");
            ii.tags = strings(i, "repoTags");
            ii.digests = strings(i, "repoDigests");
            if (ii.id.empty()) return fail(ErrorKind::ExternalFailed, "crictl images: an image without an id");
            out.push_back(std::move(ii));
        }
        return out;
    } catch (const json::exception& e) {
        return fail(ErrorKind::ExternalFailed, std::string("crictl images: unreadable JSON: ") + e.what());
    }
}

const ContainerInfo* newest_container(const std::vector<ContainerInfo>& all, const std::string& name)
{
    const ContainerInfo* best = nullptr;
    for (const auto& c : all) {
        if (c.name != name) continue;
        // Prefer a running one, then the newest.
        if (!best || (c.running() && !best->running()) ||
            (c.running() == best->running() && c.created_ns > best->created_ns))
            best = &c;
    }
    return best;
}

namespace
{

std::string first_line(std::string s)
{
    while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
        s.pop_back();
    if (s.size() > 400) s = s.substr(s.size() - 400);
    return s;
}

std::vector<std::string> lines_of(const std::string& s)
{
    std::vector<std::string> out;
    for (std::string_view l : split_lines(s)) {
        while (!l.empty() && (l.back() == ' ' || l.back() == '\r'))
            l.remove_suffix(1);
        if (!l.empty()) out.emplace_back(l);
    }
    return out;
}

class CrictlRuntime final : public ContainerRuntime
{
  public:
    CrictlRuntime(std::string crictl, std::string crio) : crictl_(std::move(crictl)), crio_(std::move(crio)) {}

    Result<std::vector<ContainerInfo>> list_containers(std::chrono::seconds timeout, const CancelToken& cancel) override
    {
        auto r = checked({crictl_, "ps", "-a", "-o", "json"}, timeout, cancel);
        if (!r) return std::unexpected(r.error());
        return parse_crictl_ps(r->out);
    }

    Result<unsigned> remove_all_pods(std::chrono::seconds timeout, const CancelToken& cancel) override
    {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        auto left = [&] {
            auto s = std::chrono::duration_cast<std::chrono::seconds>(deadline - std::chrono::steady_clock::now());
            return s.count() < 1 ? std::chrono::seconds(1) : s;
        };
        auto pods = list_pods(left(), cancel);
        if (!pods) return std::unexpected(pods.error());
        unsigned n = static_cast<unsigned>(pods->size());
        for (;;) {
            if (!pods->empty()) {
                std::vector<std::string> argv = {crictl_, "stopp"};
                argv.insert(argv.end(), pods->begin(), pods->end());
                // A pod that vanished in between makes stopp fail; rmp and the re-list below decide.
                auto st = run(argv, left(), cancel);
                if (!st) return std::unexpected(st.error());
                if (st->exit_code != 0) log::warning("crictl stopp: " + first_line(st->err));
                UR_TRY(checked({crictl_, "rmp", "-fa"}, left(), cancel));
            }
            pods = list_pods(left(), cancel);
            if (!pods) return std::unexpected(pods.error());
            if (pods->empty()) return n;
            if (std::chrono::steady_clock::now() >= deadline)
                return fail(ErrorKind::Timeout, std::to_string(pods->size()) + " pod sandboxes still present after " +
                                                    std::to_string(timeout.count()) + "s");
            UR_TRY(cancel.check());
            std::this_thread::sleep_for(std::chrono::milliseconds(500));
        }
    }

    Result<std::vector<ImageInfo>> list_images(std::chrono::seconds timeout, const CancelToken& cancel) override
    {
        auto r = checked({crictl_, "images", "-o", "json"}, timeout, cancel);
        if (!r) return std::unexpected(r.error());
        return parse_crictl_images(r->out);
    }

    Result<> pull_image(const std::string& ref, std::chrono::seconds timeout, const CancelToken& cancel) override
    {
        auto r = checked({crictl_, "pull", ref}, timeout, cancel);
        if (!r) return std::unexpected(r.error());
        return {};
    }

    Result<> wipe_storage(std::chrono::seconds timeout, const CancelToken& cancel) override
    {
        auto r = checked({crio_, "wipe", "-f"}, timeout, cancel);
        if (!r) return std::unexpected(r.error());
        return {};
    }

  private:
    Result<std::vector<std::string>> list_pods(std::chrono::seconds timeout, const CancelToken& cancel)
    {
        auto r = checked({crictl_, "pods", "-q"}, timeout, cancel);
        if (!r) return std::unexpected(r.error());
        return lines_of(r->out);
    }

    Result<CommandResult> run(const std::vector<std::string>& argv, std::chrono::seconds timeout,
                              const CancelToken& cancel)
    {
        Command c;
        c.argv = argv;
        c.timeout = timeout;
        return run_command(c, &cancel);
    }

    Result<CommandResult> checked(const std::vector<std::string>& argv, std::chrono::seconds timeout,
                                  const CancelToken& cancel)
    {
        std::string what;
        for (const auto& a : argv)
            what += (what.empty() ? "" : " ") + a;
        auto r = run(argv, timeout, cancel);
        if (!r) return std::unexpected(std::move(r.error()).context(what));
        if (r->exit_code != 0)
            return fail(ErrorKind::ExternalFailed,
                        what + ": " +
                            (r->exit_code < 0 ? "killed by signal " + std::to_string(r->signal)
                                              : "exit " + std::to_string(r->exit_code)) +
                            (r->err.empty() ? "" : ": " + first_line(r->err)));
        return r;
    }

    std::string crictl_;
    std::string crio_;
};

} // namespace

std::unique_ptr<ContainerRuntime> make_crictl_runtime(const Config& cfg, std::string crio)
{
    return std::make_unique<CrictlRuntime>(cfg.crictl, std::move(crio));
}

} // namespace ur
