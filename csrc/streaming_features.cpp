#include "streaming_features.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace pyser {

StreamingFeatures::StreamingFeatures(const ValidatedOptions& options) : processor_(options) {
  buffer_.reserve(2 * static_cast<size_t>(options->n_fft));
}

size_t StreamingFeatures::max_frames_completed_by(size_t n) const {
  const size_t hop = options()->hop_length;
  return n / hop + (n % hop != 0);
}

size_t StreamingFeatures::frames_completed_by(size_t n) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return frames_completed_by_locked(n);
}

size_t StreamingFeatures::frames_completed_by_locked(size_t n) const {
  const uint64_t end = num_samples_ + n;
  const uint64_t next_start = static_cast<uint64_t>(num_frames_) * options()->hop_length;
  const uint64_t n_fft = options()->n_fft;
  if (end < next_start + n_fft) return 0;
  return static_cast<size_t>((end - next_start - n_fft) / options()->hop_length + 1);
}

size_t StreamingFeatures::accept_waveform(const SampleView& chunk, float* out, size_t out_frames) {
  std::lock_guard<std::mutex> lock(mutex_);
  const uint64_t hop = options()->hop_length;
  const uint64_t n_fft = options()->n_fft;
  const size_t n = chunk.size;
  const size_t completed = frames_completed_by_locked(n);
  if (completed > out_frames) {
    throw std::invalid_argument("accept_waveform: the chunk completes " +
                                std::to_string(completed) + " frames, out has room for " +
                                std::to_string(out_frames));
  }
  uint64_t next_start = static_cast<uint64_t>(num_frames_) * hop;
  // Samples before the next frame's start are never needed again. When hop
  // exceeds n_fft, the chunk's first `skip` samples may be such: they are
  // checked, not stored.
  const size_t skip = static_cast<size_t>(
      std::min<uint64_t>(n, next_start > num_samples_ ? next_start - num_samples_ : 0));
  check_samples(chunk, 0, skip);
  // Append first and drop the unneeded prefix after, so that a bad sample
  // (the conversion throws) leaves the stream as it was.
  const size_t old_size = buffer_.size();
  buffer_.resize(old_size + (n - skip));
  try {
    read_samples(chunk, skip, n, buffer_.data() + old_size);
  } catch (...) {
    buffer_.resize(old_size);
    throw;
  }
  const uint64_t keep_from = std::min<uint64_t>(next_start, num_samples_ + n);
  // skip > 0: every buffered sample lies before next_start.
  const size_t drop = skip > 0 ? old_size : static_cast<size_t>(keep_from - origin_);
  buffer_.erase(buffer_.begin(), buffer_.begin() + drop);
  origin_ = keep_from;
  num_samples_ += n;

  size_t emitted = 0;
  while (emitted < completed && origin_ + buffer_.size() >= next_start + n_fft) {
    processor_.compute(buffer_.data() + (next_start - origin_), out + emitted * n_bins());
    ++emitted;
    ++num_frames_;
    next_start += hop;
  }
  return emitted;
}

void StreamingFeatures::reset() {
  std::lock_guard<std::mutex> lock(mutex_);
  buffer_.clear();
  origin_ = 0;
  num_samples_ = 0;
  num_frames_ = 0;
}

size_t StreamingFeatures::num_frames() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return num_frames_;
}

uint64_t StreamingFeatures::num_samples() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return num_samples_;
}

}  // namespace pyser
