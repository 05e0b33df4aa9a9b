#include "samples.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>

namespace pyser {
namespace {

// The largest accepted |sample| of each float type, as the bits of its
// absolute value: IEEE floats of one sign order like their bit patterns, and
// NaN and infinity lie above every finite value, so one unsigned max over
// the masked bits checks a whole range, branch-free.
constexpr double kMaxAbsValue = kMaxAbsSample;
static_assert(kMaxAbsSample < FLT_MAX, "the bound must be a finite float32");

uint32_t abs_bits_limit_f32() {
  const float limit = static_cast<float>(kMaxAbsValue);
  uint32_t bits;
  std::memcpy(&bits, &limit, sizeof bits);
  return bits;
}

uint64_t abs_bits_limit_f64() {
  const double limit = kMaxAbsValue;
  uint64_t bits;
  std::memcpy(&bits, &limit, sizeof bits);
  return bits;
}

const uint32_t kLimitF32 = abs_bits_limit_f32();
const uint64_t kLimitF64 = abs_bits_limit_f64();

// Compilers turn these into one bswap instruction.
inline uint16_t byte_swap(uint16_t x) { return static_cast<uint16_t>((x >> 8) | (x << 8)); }
inline uint32_t byte_swap(uint32_t x) {
  return ((x & 0xffu) << 24) | ((x & 0xff00u) << 8) | ((x >> 8) & 0xff00u) | (x >> 24);
}
inline uint64_t byte_swap(uint64_t x) {
  return (static_cast<uint64_t>(byte_swap(static_cast<uint32_t>(x))) << 32) |
         byte_swap(static_cast<uint32_t>(x >> 32));
}

// The raw bits of the sample at p (any alignment), in this machine's order.
template <typename Bits, bool kSwap>
inline Bits load_bits(const char* p) {
  Bits b;
  std::memcpy(&b, p, sizeof b);
  return kSwap ? byte_swap(b) : b;
}

// The value of type Value stored at p, whose bytes are in the other byte order when swapped.
template <typename Bits, typename Value>
Value load(const char* p, bool swapped) {
  static_assert(sizeof(Bits) == sizeof(Value), "Bits must be Value's size");
  const Bits b = swapped ? load_bits<Bits, true>(p) : load_bits<Bits, false>(p);
  Value v;
  std::memcpy(&v, &b, sizeof v);
  return v;
}

// Sample i of view as a double (exact for every supported type).
double sample_value(const SampleView& view, size_t i) {
  const char* p =
      static_cast<const char*>(view.data) + static_cast<std::ptrdiff_t>(i) * view.stride;
  switch (view.type) {
    case SampleType::kFloat32:
      return load<uint32_t, float>(p, view.byte_swapped);
    case SampleType::kFloat64:
      return load<uint64_t, double>(p, view.byte_swapped);
    case SampleType::kInt16:
      return load<uint16_t, int16_t>(p, view.byte_swapped);
  }
  return 0.0;
}

// Called once a range is known to hold a bad sample: finds the first one and
// throws the error naming it.
[[noreturn]] void throw_bad_sample(const SampleView& view, size_t begin, size_t end) {
  for (size_t i = begin; i < end; ++i) {
    const double v = sample_value(view, i);
    if (std::fabs(v) <= kMaxAbsValue) continue;
    const std::string at = " at index " + std::to_string(i);
    if (std::isnan(v)) throw std::invalid_argument("waveform has a non-finite sample (nan)" + at);
    if (std::isinf(v)) {
      throw std::invalid_argument("waveform has a non-finite sample (" +
                                  std::string(v < 0 ? "-inf" : "inf") + ")" + at);
    }
    char value[32], bound[32];
    std::snprintf(value, sizeof value, "%g", v);
    std::snprintf(bound, sizeof bound, "%g", kMaxAbsSample);
    const char* as_float = std::fabs(v) > FLT_MAX ? ", inf as float32" : "";
    throw std::invalid_argument("waveform has a sample too loud for float32 features (" +
                                std::string(value) + as_float + ")" + at +
                                ": samples must satisfy |x| <= " + bound +
                                " (MAX_ABS_SAMPLE), above which power can overflow float32; "
                                "scale the audio to [-1, 1]");
  }
  throw std::logic_error("throw_bad_sample: no bad sample in the range");
}

// The conversion loops, one per (type, byte order, contiguity); out == nullptr
// only checks. Each returns whether every sample was within the limit.
template <bool kSwap, bool kContiguous, bool kStore>
bool convert_f32(const char* p, std::ptrdiff_t stride, size_t n, float* out) {
  if (kContiguous) stride = sizeof(float);
  uint32_t worst = 0;
  for (size_t i = 0; i < n; ++i) {
    const uint32_t b = load_bits<uint32_t, kSwap>(p + static_cast<std::ptrdiff_t>(i) * stride);
    worst = std::max(worst, b & 0x7fffffffu);
    if (kStore) std::memcpy(out + i, &b, sizeof b);
  }
  return worst <= kLimitF32;
}

template <bool kSwap, bool kContiguous>
bool convert_f32(const char* p, std::ptrdiff_t stride, size_t n, float* out) {
  return out ? convert_f32<kSwap, kContiguous, true>(p, stride, n, out)
             : convert_f32<kSwap, kContiguous, false>(p, stride, n, out);
}

template <bool kSwap>
bool convert_f64(const char* p, std::ptrdiff_t stride, size_t n, float* out) {
  uint64_t worst = 0;
  for (size_t i = 0; i < n; ++i) {
    const uint64_t b = load_bits<uint64_t, kSwap>(p + static_cast<std::ptrdiff_t>(i) * stride);
    const uint64_t abs_bits = b & 0x7fffffffffffffffull;
    worst = std::max(worst, abs_bits);
    if (out) {
      double v;
      std::memcpy(&v, &b, sizeof v);
      // Out-of-range values are never converted (that would be undefined);
      // they make the call throw instead.
      out[i] = static_cast<float>(abs_bits <= kLimitF64 ? v : 0.0);
    }
  }
  return worst <= kLimitF64;
}

template <bool kSwap>
void convert_i16(const char* p, std::ptrdiff_t stride, size_t n, float* out) {
  for (size_t i = 0; i < n; ++i) {
    const uint16_t b = load_bits<uint16_t, kSwap>(p + static_cast<std::ptrdiff_t>(i) * stride);
    int16_t v;
    std::memcpy(&v, &b, sizeof v);
    out[i] = static_cast<float>(v) * (1.0f / 32768.0f);
  }
}

void convert(const SampleView& view, size_t begin, size_t end, float* out) {
  if (begin > end || end > view.size) throw std::out_of_range("sample range outside the view");
  const size_t n = end - begin;
  const char* p =
      static_cast<const char*>(view.data) + static_cast<std::ptrdiff_t>(begin) * view.stride;
  const bool swap = view.byte_swapped;
  bool ok = true;
  switch (view.type) {
    case SampleType::kFloat32:
      if (view.stride == static_cast<std::ptrdiff_t>(sizeof(float))) {
        ok = swap ? convert_f32<true, true>(p, view.stride, n, out)
                  : convert_f32<false, true>(p, view.stride, n, out);
      } else {
        ok = swap ? convert_f32<true, false>(p, view.stride, n, out)
                  : convert_f32<false, false>(p, view.stride, n, out);
      }
      break;
    case SampleType::kFloat64:
      ok = swap ? convert_f64<true>(p, view.stride, n, out)
                : convert_f64<false>(p, view.stride, n, out);
      break;
    case SampleType::kInt16:  // |x| <= 1 after scaling: nothing to check
      if (out) {
        if (swap) {
          convert_i16<true>(p, view.stride, n, out);
        } else {
          convert_i16<false>(p, view.stride, n, out);
        }
      }
      break;
  }
  if (!ok) throw_bad_sample(view, begin, end);
}

}  // namespace

SampleView SampleView::contiguous(const float* samples, size_t n) {
  return {samples, n, static_cast<std::ptrdiff_t>(sizeof(float)), SampleType::kFloat32, false};
}

SampleView SampleView::contiguous(const int16_t* samples, size_t n) {
  return {samples, n, static_cast<std::ptrdiff_t>(sizeof(int16_t)), SampleType::kInt16, false};
}

bool SampleView::is_native_float32() const {
  return type == SampleType::kFloat32 && !byte_swapped &&
         stride == static_cast<std::ptrdiff_t>(sizeof(float)) &&
         reinterpret_cast<std::uintptr_t>(data) % alignof(float) == 0;
}

void read_samples(const SampleView& view, size_t begin, size_t end, float* out) {
  if (begin == end) return;
  convert(view, begin, end, out);
}

void check_samples(const SampleView& view, size_t begin, size_t end) {
  if (begin == end) return;
  convert(view, begin, end, nullptr);
}

const float* samples_as_float(const SampleView& view, std::vector<float>& scratch) {
  if (view.is_native_float32()) {
    check_samples(view, 0, view.size);
    return static_cast<const float*>(view.data);
  }
  scratch.resize(view.size);
  read_samples(view, 0, view.size, scratch.data());
  return scratch.data();
}

}  // namespace pyser
