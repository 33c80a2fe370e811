// The a{sv} options every Manager method takes. Each method declares the keys
// it knows and their D-Bus types; an unknown key or a wrong type is rejected
// with InvalidArgs naming the key, so a typo never silently means "default".
#pragma once

#include "error.hpp"

#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <systemd/sd-bus.h>
#include <variant>

namespace ur::dbus
{

struct OptionSpec {
    const char* key;
    char type; // 'b', 'u', 's', 't'
};

class Options
{
  public:
    using Value = std::variant<bool, uint32_t, uint64_t, std::string>;

    bool has(const std::string& key) const { return values_.contains(key); }
    std::optional<bool> boolean(const std::string& key) const { return get<bool>(key); }
    std::optional<uint32_t> u32(const std::string& key) const { return get<uint32_t>(key); }
    std::optional<uint64_t> u64(const std::string& key) const { return get<uint64_t>(key); }
    std::optional<std::string> str(const std::string& key) const { return get<std::string>(key); }

    void set(const std::string& key, Value v) { values_[key] = std::move(v); }

  private:
    template <class T> std::optional<T> get(const std::string& key) const
    {
        auto it = values_.find(key);
        if (it == values_.end()) return std::nullopt;
        if (auto* p = std::get_if<T>(&it->second)) return *p;
        return std::nullopt;
    }
    std::map<std::string, Value> values_;
};

// Read an a{sv} from `m` (positioned at it) and check it against `spec`.
Result<Options> read_options(sd_bus_message* m, std::initializer_list<OptionSpec> spec);

} // namespace ur::dbus
