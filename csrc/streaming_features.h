// Frame-by-frame features of an audio stream arriving in chunks of any size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "frame_features.h"

namespace pyser {

// Framing is librosa's center=False (Kaldi snip_edges): frame t covers
// samples [t·hop, t·hop + n_fft) counted from the stream start and is computed
// as soon as its last sample arrives, so any chunking yields the same frames,
// bit for bit, as extract_features on the whole signal with center=False.
class StreamingFeatures {
 public:
  explicit StreamingFeatures(const ValidatedOptions& options);

  const ValidatedOptions& options() const { return processor_.options(); }
  int n_bins() const { return processor_.n_bins(); }

  // Frames that a chunk of n more samples would complete.
  size_t frames_completed_by(size_t n) const;

  // Appends a chunk and writes the frames it completes to out
  // (frames_completed_by(chunk.size) × n_bins). Samples follow the input
  // contract of samples.h: a chunk with a bad sample throws
  // std::invalid_argument and leaves the stream as it was.
  size_t accept_waveform(const SampleView& chunk, float* out);

  // Forgets all audio; the next sample is sample 0 of a new stream.
  void reset();

  size_t num_frames() const { return num_frames_; }     // frames emitted so far
  uint64_t num_samples() const { return num_samples_; } // samples accepted so far

 private:
  FrameProcessor processor_;
  std::vector<float> buffer_;  // samples from stream index origin_ on
  uint64_t origin_ = 0;
  uint64_t num_samples_ = 0;
  size_t num_frames_ = 0;
};

}  // namespace pyser
