// SHA-256 over streamed data (OpenSSL EVP: uses SHA-NI/AVX2 where present).
#pragma once

#include <cstddef>
#include <memory>
#include <string>

namespace ur
{

class Sha256
{
  public:
    Sha256();
    ~Sha256();
    Sha256(const Sha256&) = delete;
    Sha256& operator=(const Sha256&) = delete;

    void update(const void* data, size_t len);
    void update_zeros(size_t len); // a hole in a sparse file reads as zeros
    std::string hex();             // finishes; the object must not be updated afterwards

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

std::string sha256_hex(const void* data, size_t len);

} // namespace ur
