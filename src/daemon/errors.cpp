#include "errors.hpp"

#include "utf8_text.hpp"

#include <cerrno>
#include <cstring>

namespace ur::dbus
{

namespace
{

// Every kind, in the order of the enum. Kept in one table so the map, the
// reverse lookup and the tests cannot drift apart.
constexpr ErrorKind kAllKinds[] = {
    ErrorKind::Internal,   ErrorKind::InvalidArgs, ErrorKind::BadConfig,      ErrorKind::PartitionNotFound,
    ErrorKind::NotMounted, ErrorKind::NoSpace,     ErrorKind::Busy,           ErrorKind::RecoveryInProgress,
    ErrorKind::Corrupt,    ErrorKind::Timeout,     ErrorKind::Cancelled,      ErrorKind::NotFound,
    ErrorKind::Io,         ErrorKind::Refused,     ErrorKind::ExternalFailed, ErrorKind::PermissionDenied,
};

#define UR_ERR(n) "io.openshift.UpgradeRecovery1.Error." n

// errno equivalents for sd_bus_error_get_errno() on either side of the bus.
const sd_bus_error_map kErrorMap[] = {
    SD_BUS_ERROR_MAP(UR_ERR("Internal"), EIO),
    SD_BUS_ERROR_MAP(UR_ERR("InvalidArgs"), EINVAL),
    SD_BUS_ERROR_MAP(UR_ERR("BadConfig"), EINVAL),
    SD_BUS_ERROR_MAP(UR_ERR("PartitionNotFound"), ENODEV),
    SD_BUS_ERROR_MAP(UR_ERR("NotMounted"), ENOTBLK),
    SD_BUS_ERROR_MAP(UR_ERR("NoSpace"), ENOSPC),
    SD_BUS_ERROR_MAP(UR_ERR("Busy"), EBUSY),
    SD_BUS_ERROR_MAP(UR_ERR("RecoveryInProgress"), EALREADY),
    SD_BUS_ERROR_MAP(UR_ERR("Corrupt"), EBADMSG),
    SD_BUS_ERROR_MAP(UR_ERR("Timeout"), ETIMEDOUT),
    SD_BUS_ERROR_MAP(UR_ERR("Cancelled"), ECANCELED),
    SD_BUS_ERROR_MAP(UR_ERR("NotFound"), ENOENT),
    SD_BUS_ERROR_MAP(UR_ERR("Io"), EIO),
    SD_BUS_ERROR_MAP(UR_ERR("Refused"), EPERM),
    SD_BUS_ERROR_MAP(UR_ERR("ExternalFailed"), EPROTO),
    SD_BUS_ERROR_MAP(UR_ERR("PermissionDenied"), EACCES),
    SD_BUS_ERROR_MAP_END,
};

#undef UR_ERR

} // namespace

ErrorKind kind_from_error_name(const char* name)
{
    if (!name) return ErrorKind::Internal;
    size_t plen = std::strlen(kErrorPrefix);
    if (std::strncmp(name, kErrorPrefix, plen) != 0) {
        // The bus's own rejections mean the same to a client as ours.
        if (std::strcmp(name, SD_BUS_ERROR_INVALID_ARGS) == 0) return ErrorKind::InvalidArgs;
        if (std::strcmp(name, SD_BUS_ERROR_ACCESS_DENIED) == 0) return ErrorKind::PermissionDenied;
        if (std::strcmp(name, SD_BUS_ERROR_TIMEOUT) == 0 || std::strcmp(name, SD_BUS_ERROR_NO_REPLY) == 0)
            return ErrorKind::Timeout;
        return ErrorKind::Internal;
    }
    for (ErrorKind k : kAllKinds)
        if (error_kind_name(k) == name + plen) return k;
    return ErrorKind::Internal;
}

int set_error(sd_bus_error* ret, const Error& e)
{
    std::string name = error_name(e.kind);
    const std::string& msg = e.message.empty() ? std::string(error_kind_name(e.kind)) : e.message;
    return sd_bus_error_set(ret, name.c_str(), valid_utf8(msg).c_str());
}

int register_error_map()
{
    return sd_bus_error_add_map(kErrorMap);
}

int exit_code_for(ErrorKind kind)
{
    switch (kind) {
    case ErrorKind::InvalidArgs: return 2;
    case ErrorKind::BadConfig: return 3;
    case ErrorKind::PartitionNotFound:
    case ErrorKind::NotMounted: return 4;
    case ErrorKind::NoSpace: return 5;
    case ErrorKind::RecoveryInProgress: return 6;
    case ErrorKind::Corrupt: return 7;
    case ErrorKind::Timeout: return 8;
    case ErrorKind::Busy: return 9;
    case ErrorKind::Cancelled: return 10;
    case ErrorKind::Refused: return 11;
    default: return 1;
    }
}

} // namespace ur::dbus
