#include "options.hpp"

#include <cstring>

namespace ur::dbus
{

namespace
{

const char* type_name(char t)
{
    switch (t) {
    case 'b': return "b (boolean)";
    case 'u': return "u (uint32)";
    case 't': return "t (uint64)";
    case 's': return "s (string)";
    }
    return "?";
}

std::unexpected<Error> bus_fail(int r, const std::string& what)
{
    // A malformed message is the caller's fault: InvalidArgs, not Io.
    Error e = sys_error(-r, what);
    e.kind = ErrorKind::InvalidArgs;
    return std::unexpected(std::move(e));
}

} // namespace

Result<Options> read_options(sd_bus_message* m, std::initializer_list<OptionSpec> spec)
{
    Options out;
    int r = sd_bus_message_enter_container(m, 'a', "{sv}");
    if (r < 0) return bus_fail(r, "options");
    for (;;) {
        r = sd_bus_message_enter_container(m, 'e', "sv");
        if (r < 0) return bus_fail(r, "options");
        if (r == 0) break;
        const char* key = nullptr;
        r = sd_bus_message_read(m, "s", &key);
        if (r < 0) return bus_fail(r, "option key");
        const OptionSpec* want = nullptr;
        for (const auto& s : spec)
            if (std::strcmp(s.key, key) == 0) want = &s;
        if (!want) {
            std::string known;
            for (const auto& s : spec)
                known += std::string(known.empty() ? "" : ", ") + s.key;
            return fail(ErrorKind::InvalidArgs, "unknown option '" + std::string(key) +
                                                    "' (known: " + (known.empty() ? std::string("none") : known) + ")");
        }
        if (out.has(key)) return fail(ErrorKind::InvalidArgs, "option '" + std::string(key) + "' given twice");
        const char* contents = nullptr;
        r = sd_bus_message_peek_type(m, nullptr, &contents);
        if (r < 0) return bus_fail(r, "option '" + std::string(key) + "'");
        if (!contents || std::strlen(contents) != 1 || contents[0] != want->type)
            return fail(ErrorKind::InvalidArgs, "option '" + std::string(key) + "' must be of type " +
                                                    type_name(want->type) + ", not '" + (contents ? contents : "?") +
                                                    "'");
        const char sig[2] = {want->type, '\0'};
        r = sd_bus_message_enter_container(m, 'v', sig);
        if (r < 0) return bus_fail(r, "option '" + std::string(key) + "'");
        switch (want->type) {
        case 'b': {
            int b = 0;
            r = sd_bus_message_read_basic(m, 'b', &b);
            if (r >= 0) out.set(key, b != 0);
            break;
        }
        case 'u': {
            uint32_t u = 0;
            r = sd_bus_message_read_basic(m, 'u', &u);
            if (r >= 0) out.set(key, u);
            break;
        }
        case 't': {
            uint64_t t = 0;
            r = sd_bus_message_read_basic(m, 't', &t);
            if (r >= 0) out.set(key, t);
            break;
        }
        case 's': {
            const char* s = nullptr;
            r = sd_bus_message_read_basic(m, 's', &s);
            if (r >= 0) out.set(key, std::string(s));
            break;
        }
        default: return fail(ErrorKind::Internal, "option spec with unsupported type");
        }
        if (r < 0) return bus_fail(r, "option '" + std::string(key) + "'");
        r = sd_bus_message_exit_container(m);             // v
        if (r >= 0) r = sd_bus_message_exit_container(m); // e
        if (r < 0) return bus_fail(r, "option '" + std::string(key) + "'");
    }
    r = sd_bus_message_exit_container(m);
    if (r < 0) return bus_fail(r, "options");
    return out;
}

} // namespace ur::dbus
