#include "error.hpp"

namespace ur
{

std::string error_name(ErrorKind kind)
{
    return std::string(kErrorNamePrefix) + std::string(error_kind_name(kind));
}

std::string_view error_kind_name(ErrorKind kind)
{
    switch (kind) {
    case ErrorKind::Internal: return "Internal";
    case ErrorKind::InvalidArgs: return "InvalidArgs";
    case ErrorKind::BadConfig: return "BadConfig";
    case ErrorKind::PartitionNotFound: return "PartitionNotFound";
    case ErrorKind::NotMounted: return "NotMounted";
    case ErrorKind::NoSpace: return "NoSpace";
    case ErrorKind::Busy: return "Busy";
    case ErrorKind::RecoveryInProgress: return "RecoveryInProgress";
    case ErrorKind::Corrupt: return "Corrupt";
    case ErrorKind::Timeout: return "Timeout";
    case ErrorKind::Cancelled: return "Cancelled";
    case ErrorKind::NotFound: return "NotFound";
    case ErrorKind::Io: return "Io";
    case ErrorKind::Refused: return "Refused";
    case ErrorKind::ExternalFailed: return "ExternalFailed";
    case ErrorKind::PermissionDenied: return "PermissionDenied";
    }
    return "Internal";
}

Error sys_error(int err, std::string_view what)
{
    ErrorKind kind = ErrorKind::Io;
    switch (err) {
    case ENOSPC:
    case EDQUOT: kind = ErrorKind::NoSpace; break;
    case ENOENT: kind = ErrorKind::NotFound; break;
    case EACCES:
    case EPERM: kind = ErrorKind::PermissionDenied; break;
    case ETIMEDOUT: kind = ErrorKind::Timeout; break;
    case ECANCELED: kind = ErrorKind::Cancelled; break;
    default: break;
    }
    return Error{kind, err, std::string(what) + ": " + std::strerror(err)};
}

} // namespace ur
