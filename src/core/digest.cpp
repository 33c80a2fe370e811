#include "digest.hpp"

#include <openssl/evp.h>

namespace ur
{

struct Sha256::Impl {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~Impl() { EVP_MD_CTX_free(ctx); }
};

Sha256::Sha256() : impl_(std::make_unique<Impl>())
{
    EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr);
}
Sha256::~Sha256() = default;

void Sha256::update(const void* data, size_t len)
{
    EVP_DigestUpdate(impl_->ctx, data, len);
}

void Sha256::update_zeros(size_t len)
{
    static const char zeros[65536] = {};
    while (len > 0) {
        size_t n = len < sizeof zeros ? len : sizeof zeros;
        update(zeros, n);
        len -= n;
    }
}

std::string Sha256::hex()
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(impl_->ctx, md, &n);
    static const char* digits = "0123456789abcdef";
    std::string out;
    out.reserve(n * 2);
    for (unsigned i = 0; i < n; i++) {
        out += digits[md[i] >> 4];
        out += digits[md[i] & 15];
    }
    return out;
}

std::string sha256_hex(const void* data, size_t len)
{
    Sha256 h;
    h.update(data, len);
    return h.hex();
}

} // namespace ur
