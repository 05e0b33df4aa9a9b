#include "streaming_features.h"

#include <algorithm>

namespace pyser {
namespace {

inline float to_float(float x) { return x; }
inline float to_float(int16_t x) { return static_cast<float>(x) * (1.0f / 32768.0f); }

}  // namespace

StreamingFeatures::StreamingFeatures(const ValidatedOptions& options) : processor_(options) {
  buffer_.reserve(2 * static_cast<size_t>(options->n_fft));
}

size_t StreamingFeatures::frames_completed_by(size_t n) const {
  const uint64_t end = num_samples_ + n;
  const uint64_t next_start = static_cast<uint64_t>(num_frames_) * options()->hop_length;
  const uint64_t n_fft = options()->n_fft;
  if (end < next_start + n_fft) return 0;
  return static_cast<size_t>((end - next_start - n_fft) / options()->hop_length + 1);
}

size_t StreamingFeatures::accept_waveform(const float* samples, size_t n, float* out) {
  check_finite(samples, n);  // before any state changes: a bad chunk loses nothing
  return accept(samples, n, out);
}

size_t StreamingFeatures::accept_waveform(const int16_t* samples, size_t n, float* out) {
  return accept(samples, n, out);
}

template <typename Sample>
size_t StreamingFeatures::accept(const Sample* samples, size_t n, float* out) {
  const uint64_t hop = options()->hop_length;
  const uint64_t n_fft = options()->n_fft;
  uint64_t next_start = static_cast<uint64_t>(num_frames_) * hop;
  // Samples before the next frame's start are never needed again (hop may
  // exceed n_fft, so some incoming samples may be skippable too).
  uint64_t skip = std::min<uint64_t>(num_samples_ + n, next_start) - origin_;
  const uint64_t drop = std::min<uint64_t>(skip, buffer_.size());
  buffer_.erase(buffer_.begin(), buffer_.begin() + drop);
  skip -= drop;
  origin_ += drop + skip;
  const size_t old_size = buffer_.size();
  buffer_.resize(old_size + (n - skip));
  float* tail = buffer_.data() + old_size;
  for (size_t i = skip; i < n; ++i) tail[i - skip] = to_float(samples[i]);
  num_samples_ += n;

  size_t emitted = 0;
  while (origin_ + buffer_.size() >= next_start + n_fft) {
    processor_.compute(buffer_.data() + (next_start - origin_), out + emitted * n_bins());
    ++emitted;
    ++num_frames_;
    next_start += hop;
  }
  return emitted;
}

void StreamingFeatures::reset() {
  buffer_.clear();
  origin_ = 0;
  num_samples_ = 0;
  num_frames_ = 0;
}

}  // namespace pyser
