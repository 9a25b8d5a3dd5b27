// Batch primitives for the control plane (see control_crypto.h).

#include "control_crypto.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <memory>
#include <string>

namespace sealcast {

namespace {

struct Item {
  std::size_t offset;
  std::size_t bytes;
};

// Reads item `index` and checks that it lies inside its slab; false when the layout is too
// short or the item runs past the slab.
bool ReadItem(const ItemsView& items, std::size_t index, Item* item) {
  if (2 * index + 1 >= items.layout_words) return false;
  item->offset = items.layout[2 * index];
  item->bytes = items.layout[2 * index + 1];
  // Each word is below 2^32, so the sum cannot overflow a 64-bit size_t.
  return item->offset + item->bytes <= items.slab_bytes;
}

Outcome CheckItems(const ItemsView& items, std::size_t count, const char* name) {
  if (items.slab == nullptr && items.slab_bytes > 0) return Outcome::Fail(ErrorKind::kType, std::string(name) + " is missing");
  if (items.layout_words < 2 * count) {
    return Outcome::Fail(ErrorKind::kRange, std::string(name) + " layout holds fewer than count items");
  }
  Item item;
  for (std::size_t index = 0; index < count; index++) {
    if (!ReadItem(items, index, &item)) {
      return Outcome::Fail(ErrorKind::kRange, std::string(name) + " item " + std::to_string(index) + " runs past the end of its slab");
    }
  }
  return Outcome::Ok();
}

Outcome CheckTarget(std::size_t count, std::size_t target_bytes) {
  if (count > kControlBatchMax) return Outcome::Fail(ErrorKind::kRange, "count exceeds the most items one call takes");
  if (target_bytes < count * kDigestBytes) return Outcome::Fail(ErrorKind::kRange, "target is smaller than count * 32 bytes");
  return Outcome::Ok();
}

Outcome Internal(const char* what) { return Outcome::Fail(ErrorKind::kInternal, std::string("OpenSSL could not ") + what); }

struct MacDeleter {
  void operator()(EVP_MAC* mac) const { EVP_MAC_free(mac); }
  void operator()(EVP_MAC_CTX* context) const { EVP_MAC_CTX_free(context); }
  void operator()(EVP_MD_CTX* context) const { EVP_MD_CTX_free(context); }
  void operator()(EVP_CIPHER_CTX* context) const { EVP_CIPHER_CTX_free(context); }
};

}  // namespace

Outcome HmacSha256Batch(const ItemsView& keys, const ItemsView& messages, std::size_t count, std::uint8_t* target,
                        std::size_t target_bytes) {
  Outcome checked = CheckTarget(count, target_bytes);
  if (!checked.ok()) return checked;
  if (!(checked = CheckItems(keys, count, "keys")).ok()) return checked;
  if (!(checked = CheckItems(messages, count, "messages")).ok()) return checked;
  if (count == 0) return Outcome::Ok();
  std::unique_ptr<EVP_MAC, MacDeleter> mac(EVP_MAC_fetch(nullptr, "HMAC", nullptr));
  if (!mac) return Internal("fetch HMAC");
  std::unique_ptr<EVP_MAC_CTX, MacDeleter> context(EVP_MAC_CTX_new(mac.get()));
  if (!context) return Internal("make an HMAC context");
  char digest_name[] = "SHA256";
  const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0), OSSL_PARAM_construct_end()};
  if (EVP_MAC_CTX_set_params(context.get(), params) != 1) return Internal("select SHA-256 for HMAC");
  for (std::size_t index = 0; index < count; index++) {
    Item key, message;
    // Read again while computing: a shared layout could have changed since the check.
    if (!ReadItem(keys, index, &key) || !ReadItem(messages, index, &message)) {
      return Outcome::Fail(ErrorKind::kRange, "the layout changed while the batch was processed (shared memory?)");
    }
    // OpenSSL refuses an empty HMAC key; HMAC pads any key to the block size with zeros, so a
    // one-byte zero key is the same key.
    static const std::uint8_t kZeroKey[1] = {0};
    const std::uint8_t* key_bytes = key.bytes > 0 ? keys.slab + key.offset : kZeroKey;
    const std::size_t key_length = key.bytes > 0 ? key.bytes : 1;
    std::size_t written = 0;
    if (EVP_MAC_init(context.get(), key_bytes, key_length, nullptr) != 1 ||
        EVP_MAC_update(context.get(), messages.slab + message.offset, message.bytes) != 1 ||
        EVP_MAC_final(context.get(), target + index * kDigestBytes, &written, kDigestBytes) != 1 || written != kDigestBytes) {
      return Internal("compute an HMAC");
    }
  }
  return Outcome::Ok();
}

Outcome Sha256Batch(const ItemsView& messages, std::size_t count, std::uint8_t* target, std::size_t target_bytes) {
  Outcome checked = CheckTarget(count, target_bytes);
  if (!checked.ok()) return checked;
  if (!(checked = CheckItems(messages, count, "messages")).ok()) return checked;
  if (count == 0) return Outcome::Ok();
  std::unique_ptr<EVP_MD_CTX, MacDeleter> context(EVP_MD_CTX_new());
  if (!context) return Internal("make a digest context");
  const EVP_MD* sha256 = EVP_sha256();
  for (std::size_t index = 0; index < count; index++) {
    Item message;
    if (!ReadItem(messages, index, &message)) {
      return Outcome::Fail(ErrorKind::kRange, "the layout changed while the batch was processed (shared memory?)");
    }
    unsigned int written = 0;
    if (EVP_DigestInit_ex(context.get(), sha256, nullptr) != 1 ||
        EVP_DigestUpdate(context.get(), messages.slab + message.offset, message.bytes) != 1 ||
        EVP_DigestFinal_ex(context.get(), target + index * kDigestBytes, &written) != 1 || written != kDigestBytes) {
      return Internal("compute a SHA-256 digest");
    }
  }
  return Outcome::Ok();
}

Outcome SealEachUnderOwnKey(const BatchView& batch, const std::uint8_t* keys, std::size_t key_bytes) {
  Outcome checked = CheckBatch(batch, nullptr, 0, false);
  if (!checked.ok()) return checked;
  if (batch.count > kControlBatchMax) return Outcome::Fail(ErrorKind::kRange, "count exceeds the most items one call takes");
  if (keys == nullptr || key_bytes < batch.count * kKeyBytes) {
    return Outcome::Fail(ErrorKind::kRange, "keys must hold 32 bytes for every slot");
  }
  if (batch.count == 0) return Outcome::Ok();
  std::unique_ptr<EVP_CIPHER_CTX, MacDeleter> context(EVP_CIPHER_CTX_new());
  if (!context || EVP_EncryptInit_ex(context.get(), EVP_chacha20_poly1305(), nullptr, nullptr, nullptr) != 1) {
    return Internal("set up ChaCha20-Poly1305");
  }
  std::size_t previous_end = 0;
  for (std::size_t index = 0; index < batch.count; index++) {
    const std::uint32_t* words = batch.layout + index * kLayoutWords;
    const std::size_t offset = words[0], aad_bytes = words[1], payload_bytes = words[2];
    const std::size_t end = offset + aad_bytes + payload_bytes + kTagBytes;
    if (offset < previous_end || end > batch.slab_bytes || aad_bytes > kAadBytesMax || payload_bytes > kPayloadBytesMax) {
      return Outcome::Fail(ErrorKind::kRange, "the layout changed while the batch was processed (shared memory?)");
    }
    previous_end = end;
    std::uint8_t* aad = batch.slab + offset;
    std::uint8_t* payload = aad + aad_bytes;
    std::uint8_t* tag = payload + payload_bytes;
    int written = 0;
    if (EVP_EncryptInit_ex(context.get(), nullptr, nullptr, keys + index * kKeyBytes, batch.nonces + index * kNonceBytes) != 1 ||
        (aad_bytes > 0 && EVP_EncryptUpdate(context.get(), nullptr, &written, aad, static_cast<int>(aad_bytes)) != 1) ||
        (payload_bytes > 0 && (EVP_EncryptUpdate(context.get(), payload, &written, payload, static_cast<int>(payload_bytes)) != 1 ||
                               written != static_cast<int>(payload_bytes))) ||
        EVP_EncryptFinal_ex(context.get(), tag, &written) != 1 ||
        EVP_CIPHER_CTX_ctrl(context.get(), EVP_CTRL_AEAD_GET_TAG, static_cast<int>(kTagBytes), tag) != 1) {
      return Internal("seal a slot");
    }
  }
  return Outcome::Ok();
}

}  // namespace sealcast
