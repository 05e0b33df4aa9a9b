// Frame-by-frame features of an audio stream arriving in chunks of any size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

#include "frame_features.h"

namespace pyser {

// Framing is librosa's center=False (Kaldi snip_edges): frame t covers
// samples [t·hop, t·hop + n_fft) counted from the stream start and is computed
// as soon as its last sample arrives, so any chunking yields the same frames,
// bit for bit, as extract_features on the whole signal with center=False.
//
// Threads: a stream is meant to be fed by one thread at a time, but any
// member may be called from any thread at any time. Calls that read or change
// the stream's state are serialised by its mutex, so racing calls are safe:
// each sees the stream as some whole call left it, and racing chunks are
// appended in the order their calls take the lock. No member calls back into
// the caller while it holds the lock.
class StreamingFeatures {
 public:
  explicit StreamingFeatures(const ValidatedOptions& options);

  // Immutable after construction: no lock.
  const ValidatedOptions& options() const { return processor_.options(); }
  int n_bins() const { return processor_.n_bins(); }

  // The most frames a chunk of n samples can complete, whatever the stream
  // holds: ceil(n / hop_length), since frames end hop_length samples apart.
  // Depends on the options only, so it needs no lock: size the output with it.
  size_t max_frames_completed_by(size_t n) const;

  // Frames that a chunk of n more samples would complete now (a snapshot: a
  // racing call may change it).
  size_t frames_completed_by(size_t n) const;

  // Appends a chunk and writes the frames it completes to out, which has room
  // for out_frames frames (n_bins floats each; max_frames_completed_by(
  // chunk.size) always suffices); returns how many it wrote. Samples follow
  // the input contract of samples.h: a chunk with a bad sample, or an out too
  // small for the frames the chunk completes, throws std::invalid_argument and
  // leaves the stream as it was.
  size_t accept_waveform(const SampleView& chunk, float* out, size_t out_frames);

  // Forgets all audio; the next sample is sample 0 of a new stream.
  void reset();

  size_t num_frames() const;     // frames emitted so far
  uint64_t num_samples() const;  // samples accepted so far

 private:
  size_t frames_completed_by_locked(size_t n) const;

  mutable std::mutex mutex_;  // guards everything below
  FrameProcessor processor_;  // its scratch space changes with every frame
  std::vector<float> buffer_;  // samples from stream index origin_ on
  uint64_t origin_ = 0;
  uint64_t num_samples_ = 0;
  size_t num_frames_ = 0;
};

}  // namespace pyser
