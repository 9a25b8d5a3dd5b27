// Wiping secrets on the hot path. OPENSSL_cleanse stores 8 bytes per loop step, which for the
// keystream of a whole lane plan (up to 16 KiB, wiped after every plan) came to 3 % of opening a
// batch of 1400-byte packets. glibc's explicit_bzero is its vectorised memset followed by a
// barrier that keeps the compiler from removing it, so it wipes as surely and several times
// faster. Elsewhere OPENSSL_cleanse stays: its cost does not matter there.

#ifndef SEALCAST_NATIVE_WIPE_H_
#define SEALCAST_NATIVE_WIPE_H_

#include <openssl/crypto.h>
#include <string.h>

#include <cstddef>

namespace sealcast {

inline void WipeSecret(void* bytes, std::size_t length) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 25))
  explicit_bzero(bytes, length);
#else
  OPENSSL_cleanse(bytes, length);
#endif
}

}  // namespace sealcast

#endif  // SEALCAST_NATIVE_WIPE_H_
