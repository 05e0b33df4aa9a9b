// One frame of features (window → real FFT → power → [Mel] → dB), and
// offline extraction of whole signals, alone or in batches on threads.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "feature_config.h"
#include "fft.h"
#include "mel.h"
#include "samples.h"

namespace pyser {

// Turns n_fft samples into n_bins log-power values. Holds scratch space, so
// one instance serves one thread.
class FrameProcessor {
 public:
  explicit FrameProcessor(const ValidatedOptions& options);

  const ValidatedOptions& options() const { return options_; }
  int n_bins() const { return n_bins_; }

  // frame: n_fft samples; out: n_bins floats.
  void compute(const float* frame, float* out);

 private:
  ValidatedOptions options_;
  int n_bins_;
  const RealFft* fft_;
  std::vector<float> window_;
  std::unique_ptr<MelFilterbank> mel_;
  std::vector<float> re_, im_, power_;
};

// 10·log10(max(x, amin)) in place, vectorised (|error| < 1e-5 dB).
void power_to_db(float* values, int n, float amin);

// Frames of a signal of n samples: center=False: 1 + (n - n_fft) / hop when
// n >= n_fft, else 0; center=True: 1 + n / hop.
size_t num_frames(const ValidatedOptions& options, size_t num_samples);

// Features of a whole signal into out (num_frames(options, samples.size) ×
// n_bins, row-major). Samples follow the input contract of samples.h; a bad
// one throws std::invalid_argument before anything is written.
void extract_features(const ValidatedOptions& options, const SampleView& samples, float* out);

struct SignalView {
  SampleView samples;
  float* out;  // num_frames(options, samples.size) × n_bins
};

// Extracts every signal of the batch on up to num_threads threads
// (0 = hardware concurrency). A bad sample throws std::invalid_argument
// naming the first bad signal ("signal i of the batch: ...").
void extract_features_batch(const ValidatedOptions& options, const std::vector<SignalView>& batch,
                            int num_threads);

}  // namespace pyser
