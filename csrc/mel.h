// Mel filterbank (librosa.filters.mel), stored and applied sparsely.
#pragma once

#include <vector>

#include "feature_config.h"

namespace pyser {

double hz_to_mel(double hz, bool htk);
double mel_to_hz(double mel, bool htk);

// Band edges in Hz: n_mels + 2 points equally spaced on the Mel scale.
std::vector<double> mel_band_edges(const FeatureOptions& options);

// Throws std::invalid_argument if some Mel band would contain no FFT bin
// (n_mels too large for n_fft between fmin and fmax), naming the band.
void check_mel_bands(const FeatureOptions& options);

class MelFilterbank {
 public:
  // Throws like check_mel_bands.
  explicit MelFilterbank(const FeatureOptions& options);

  int num_bands() const { return static_cast<int>(start_.size()); }
  int num_bins() const { return num_bins_; }

  // mel[b] = Σ_k weight[b][k] · power[k]; power has num_bins() values.
  void apply(const float* power, float* mel) const;

  // The largest sum of one band's weights: the most a band can amplify power.
  double max_band_gain() const;

  // The dense (num_bands × num_bins) row-major matrix, for tests and plots.
  std::vector<float> dense() const;

 private:
  int num_bins_;
  std::vector<int> start_;    // first non-zero bin of each band
  std::vector<int> length_;   // number of non-zero bins of each band
  std::vector<int> offset_;   // where each band's weights begin in weights_
  std::vector<float> weights_;
};

}  // namespace pyser
