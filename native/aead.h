// The batch AEAD core of sealcast: plain C++ over the OpenSSL that Node ships (and, for the
// `lanes` engine, two AVX-512 kernels of our own), with no Node-API types, so that it can be
// reasoned about (and tested) apart from the JS binding.
//
// A batch is a caller-owned slab of packet slots [ AAD | payload | tag ], a layout of three
// 32-bit words per slot (offset, AAD bytes, payload bytes) and one 12-byte nonce per slot.
// Sealing and opening rewrite payloads and tags in place; a slot may also be opened into memory
// outside the slab (OpenSlotInto, or a run of slots back to back with OpenRunInto, which the
// receive path uses to decrypt straight into its output).

#ifndef SEALCAST_NATIVE_AEAD_H_
#define SEALCAST_NATIVE_AEAD_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

// Forward declaration, so that users of this header need not see OpenSSL's headers.
typedef struct evp_cipher_ctx_st EVP_CIPHER_CTX;

namespace sealcast {

constexpr std::size_t kKeyBytes = 32;
constexpr std::size_t kNonceBytes = 12;
constexpr std::size_t kTagBytes = 16;
constexpr std::size_t kLayoutWords = 3;
// One slot carries at most one UDP datagram, so 64 KiB bounds both the AAD and the payload;
// the bound also keeps every length well inside OpenSSL's `int` lengths.
constexpr std::size_t kPayloadBytesMax = 65536;
constexpr std::size_t kAadBytesMax = 65536;
constexpr std::uint8_t kStatusOk = 0;
constexpr std::uint8_t kStatusAuthFailed = 1;

enum class Suite { kChaCha20Poly1305, kAes256Gcm, kAes128Gcm, kAes192Gcm };

struct SuiteInfo {
  Suite suite;
  const char* name;
  std::size_t key_bytes;
};

// Every suite the core implements, in the order the backend lists them.
constexpr SuiteInfo kSuites[] = {
    {Suite::kChaCha20Poly1305, "chacha20-poly1305", 32},
    {Suite::kAes256Gcm, "aes-256-gcm", 32},
    {Suite::kAes128Gcm, "aes-128-gcm", 16},
    {Suite::kAes192Gcm, "aes-192-gcm", 24},
};
constexpr std::size_t kSuiteCount = sizeof(kSuites) / sizeof(kSuites[0]);

// Returns the suite called `name`, or nullptr when there is none.
const SuiteInfo* FindSuite(const std::string& name);

// True when [a, a + a_bytes) and [b, b + b_bytes) share a byte. Empty ranges share nothing.
bool RangesOverlap(const void* a, std::size_t a_bytes, const void* b, std::size_t b_bytes);

// The version text of the OpenSSL the process runs (Node's own), e.g. "OpenSSL 3.0.19 ...".
const char* OpenSslVersion();

// Raw views of the memory of one batch. Lengths are in elements of each array.
struct BatchView {
  std::uint8_t* slab;
  std::size_t slab_bytes;
  const std::uint32_t* layout;
  std::size_t layout_words;
  const std::uint8_t* nonces;
  std::size_t nonce_bytes;
  std::size_t count;
};

// What was wrong with a batch: the binding turns kType into a TypeError and kRange into a
// RangeError; kInternal means OpenSSL refused an operation, which is a bug or a broken library.
enum class ErrorKind { kNone, kType, kRange, kInternal };

struct Outcome {
  ErrorKind kind = ErrorKind::kNone;
  std::string message;

  bool ok() const { return kind == ErrorKind::kNone; }
  static Outcome Ok() { return Outcome(); }
  static Outcome Fail(ErrorKind kind, std::string message) { return Outcome{kind, std::move(message)}; }
};

// Checks every fact the TypeScript layer already checked (validate.ts), before any byte is
// touched: count within the layout and nonce capacity, every slot inside the slab, slots in
// increasing order without overlap, the status array (when given) large enough, and no
// auxiliary array sharing memory with the slab.
Outcome CheckBatch(const BatchView& batch, const std::uint8_t* status, std::size_t status_bytes, bool with_status);

// How a context computes ChaCha20-Poly1305 (AES-GCM always uses EVP).
enum class Engine {
  // OpenSSL's EVP AEAD interface: the contexts get the key once, each packet sets its nonce.
  kEvp,
  // OpenSSL's own ChaCha20 and Poly1305 primitives, composed as RFC 8439 describes. EVP spends
  // about 300 ns per packet on setting the nonce and producing the tag; this composition saves
  // roughly a third of that, and verifies the tag before decrypting, so a forged payload is
  // never even decrypted. Used only where Node exports the primitives and they agree with EVP.
  kPrimitives,
  // The primitives for each payload's whole groups of 16 ChaCha20 blocks; block 0 and the blocks
  // after the last whole group computed 16 at a time across the packets of a batch by ChaChaLanes
  // (chacha_lanes.h), so that no block is computed and thrown away; and the tags 8 packets at a
  // time by PolyTagLanes (poly1305_lanes.h). Used where the CPU has AVX-512F and AVX512-IFMA and
  // the result agrees with EVP.
  kLanes,
};

// Which engine a context may use: the fastest that passes its self-check, the primitives
// without the lanes (or EVP where they are missing), or EVP.
enum class EngineChoice { kFastest, kPrimitives, kEvp };

// What OpenRunInto did: the slots opened, their payload bytes, and whether it stopped at a slot
// that did not authenticate.
struct RunOutcome {
  std::size_t slots = 0;
  std::size_t bytes = 0;
  bool auth_failed = false;
};

// True when the process exports OpenSSL's ChaCha20 and Poly1305 primitives (Node does on Linux).
bool ChaChaPrimitivesAvailable();

// True when, besides the primitives, this CPU runs both lanes kernels (Engine::kLanes).
bool ChaChaLanesAvailable();

struct ChaChaPrimitivesState;

// A key schedule for one suite and one key: two OpenSSL contexts, one sealing and one opening,
// each given the key once, so that per packet only the nonce is set; for ChaCha20-Poly1305
// usually the primitives engine instead (see Engine). Not thread-safe: each thread (worker)
// creates its own.
class AeadContext {
 public:
  // Returns nullptr and sets `error` when the key has the wrong size or OpenSSL fails. A
  // ChaCha20-Poly1305 context uses the fastest engine `choice` allows that is available and
  // agrees with EVP on a self-check; AES-GCM always uses EVP.
  static std::unique_ptr<AeadContext> Create(const SuiteInfo& suite, const std::uint8_t* key, std::size_t key_bytes,
                                             EngineChoice choice, Outcome* error);
  ~AeadContext();
  AeadContext(const AeadContext&) = delete;
  AeadContext& operator=(const AeadContext&) = delete;

  const SuiteInfo& suite() const { return suite_; }
  Engine engine() const;

  // Seals every slot in place. The batch must have passed CheckBatch; the bounds of each slot
  // are checked again as it is processed, because a SharedArrayBuffer layout could change
  // between the check and the use.
  Outcome SealBatch(const BatchView& batch);

  // Opens every slot in place, writing kStatusOk or kStatusAuthFailed per slot, and stores in
  // `authenticated` how many slots verified. A failed slot's payload is zeroed.
  Outcome OpenBatch(const BatchView& batch, std::uint8_t* status, std::size_t* authenticated);

  // Opens slot `index` of a checked batch (CheckBatch) into `target` instead of in place: the
  // plaintext goes to target[0, payload bytes) and the slot is left as it was. Writes kStatusOk
  // or kStatusAuthFailed to `*status`; on failure the target range is zeroed. With the
  // primitives engine the tag is verified before anything is decrypted, so a forged payload
  // never reaches the target at all. The target must not overlap the slab.
  Outcome OpenSlotInto(const BatchView& batch, std::size_t index, std::uint8_t* target, std::size_t target_bytes,
                       std::uint8_t* status);

  // Opens slots [first, end) of a checked batch one after another into target, their payloads
  // back to back from target[0], as OpenSlotInto would, and stops after the first that does not
  // authenticate (its status says so and its room in the target is zeroed). `status` is indexed
  // like the batch. A payload that does not fit what is left of the target is a RangeError.
  Outcome OpenRunInto(const BatchView& batch, std::size_t first, std::size_t end, std::uint8_t* target,
                      std::size_t target_bytes, std::uint8_t* status, RunOutcome* run);

 private:
  explicit AeadContext(const SuiteInfo& suite);
  Outcome SealBatchEvp(const BatchView& batch);
  Outcome OpenBatchEvp(const BatchView& batch, std::uint8_t* status, std::size_t* authenticated);
  // Opens one slot with EVP, writing the plaintext to `target` (the payload itself, or memory
  // outside the slab); on failure the target is zeroed. Leaves the OpenSSL error queue to the caller.
  bool OpenSlotEvp(const std::uint8_t* nonce, const std::uint8_t* aad, std::size_t aad_bytes,
                   const std::uint8_t* payload, std::size_t payload_bytes, std::uint8_t* target);
  Outcome SealBatchPrimitives(const BatchView& batch);
  Outcome OpenBatchPrimitives(const BatchView& batch, std::uint8_t* status, std::size_t* authenticated);
  Outcome SealBatchLanes(const BatchView& batch);
  Outcome OpenBatchLanes(const BatchView& batch, std::uint8_t* status, std::size_t* authenticated);
  Outcome OpenRunLanes(const BatchView& batch, std::size_t first, std::size_t end, std::uint8_t* target,
                       std::size_t target_bytes, std::uint8_t* status, RunOutcome* run);
  // Seals and opens a fixed sample with EVP and with the engine in use; true when they agree
  // byte for byte.
  bool PrimitivesAgreeWithEvp();

  SuiteInfo suite_;
  EVP_CIPHER_CTX* seal_ = nullptr;
  EVP_CIPHER_CTX* open_ = nullptr;
  // The ChaCha20 key words and a Poly1305 context, when Engine::kPrimitives is in use.
  std::unique_ptr<ChaChaPrimitivesState, void (*)(ChaChaPrimitivesState*)> primitives_;
};

}  // namespace sealcast

#endif  // SEALCAST_NATIVE_AEAD_H_
