// The input contract of every extractor (offline, batch, streaming), in one
// place: which samples are accepted and how they become float32.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace pyser {

enum class SampleType { kFloat32, kFloat64, kInt16 };

// The largest accepted |sample| of float input. Far above any audio (int32
// PCM as floats stays below 2.2e9), and low enough that the power of a frame
// cannot overflow float32 in any valid FeatureOptions (validate() refuses
// the few whose Mel weights would allow it), so a loud signal is either
// computed right or refused, never saturated or mistaken for silence.
constexpr double kMaxAbsSample = 1e12;

// `size` samples of one supported type anywhere in memory: any stride in bytes
// (negative, zero, not a multiple of the sample size, unaligned) and either
// byte order. It only describes memory the caller keeps alive.
struct SampleView {
  const void* data = nullptr;  // sample 0
  size_t size = 0;             // number of samples
  std::ptrdiff_t stride = 0;   // bytes from sample i to sample i + 1
  SampleType type = SampleType::kFloat32;
  bool byte_swapped = false;   // stored in the byte order opposite to this machine's

  static SampleView contiguous(const float* samples, size_t n);
  static SampleView contiguous(const int16_t* samples, size_t n);

  // Native, contiguous, aligned float32: extractors can read it in place.
  bool is_native_float32() const;
};

// Samples become float32 so: float32 as is, float64 rounded to nearest, int16
// scaled by 1/32768. Float samples must be finite with |x| <= kMaxAbsSample;
// a bad sample throws std::invalid_argument naming it and its index in the
// view ("waveform has a non-finite sample (nan) at index 12").

// Converts samples [begin, end) of view into out[0, end - begin), checking
// them. On a throw, out holds unspecified values.
void read_samples(const SampleView& view, size_t begin, size_t end, float* out);

// Checks samples [begin, end) of view without converting them.
void check_samples(const SampleView& view, size_t begin, size_t end);

// All samples of view as contiguous float32, checked: view's own memory when
// it is native float32 already, else a converted copy in scratch.
const float* samples_as_float(const SampleView& view, std::vector<float>& scratch);

}  // namespace pyser
