#include "mel.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "simd.h"

namespace pyser {
namespace {

// Slaney's Auditory Toolbox scale: linear below 1 kHz, logarithmic above.
constexpr double kSlaneyHzPerMel = 200.0 / 3.0;
constexpr double kSlaneyMinLogHz = 1000.0;
constexpr double kSlaneyMinLogMel = kSlaneyMinLogHz / kSlaneyHzPerMel;
const double kSlaneyLogStep = std::log(6.4) / 27.0;

PYSER_MULTIVERSION
void apply_bands(const float* PYSER_RESTRICT power, float* PYSER_RESTRICT mel, int num_bands,
                 const int* start, const int* length, const int* offset,
                 const float* PYSER_RESTRICT weights) {
  for (int b = 0; b < num_bands; ++b) {
    const float* p = power + start[b];
    const float* w = weights + offset[b];
    float sum = 0.0f;
    for (int k = 0; k < length[b]; ++k) sum += w[k] * p[k];
    mel[b] = sum;
  }
}

}  // namespace

double hz_to_mel(double hz, bool htk) {
  if (htk) return 2595.0 * std::log10(1.0 + hz / 700.0);
  if (hz < kSlaneyMinLogHz) return hz / kSlaneyHzPerMel;
  return kSlaneyMinLogMel + std::log(hz / kSlaneyMinLogHz) / kSlaneyLogStep;
}

double mel_to_hz(double mel, bool htk) {
  if (htk) return 700.0 * (std::pow(10.0, mel / 2595.0) - 1.0);
  if (mel < kSlaneyMinLogMel) return mel * kSlaneyHzPerMel;
  return kSlaneyMinLogHz * std::exp(kSlaneyLogStep * (mel - kSlaneyMinLogMel));
}

std::vector<double> mel_band_edges(const FeatureOptions& options) {
  const int n = options.n_mels + 2;
  // Computed in double, as librosa does.
  const double mel_lo = hz_to_mel(options.fmin, options.htk);
  const double mel_hi = hz_to_mel(options.fmax_hz(), options.htk);
  std::vector<double> edges(n);
  for (int i = 0; i < n; ++i) {
    edges[i] = mel_to_hz(mel_lo + (mel_hi - mel_lo) * i / (n - 1), options.htk);
  }
  return edges;
}

void check_mel_bands(const FeatureOptions& options) {
  const std::vector<double> edges = mel_band_edges(options);
  const double bin_hz = static_cast<double>(options.sample_rate) / options.n_fft;
  const int num_bins = options.n_fft / 2 + 1;
  for (int b = 0; b < options.n_mels; ++b) {
    // A weight is non-zero only for a bin frequency strictly inside (lower, upper).
    const int first = static_cast<int>(std::floor(edges[b] / bin_hz)) + 1;
    if (first >= num_bins || first * bin_hz >= edges[b + 2]) {
      throw std::invalid_argument(
          "FeatureConfig.n_mels " + std::to_string(options.n_mels) + " is too large for n_fft " +
          std::to_string(options.n_fft) + " between fmin and fmax: Mel band " +
          std::to_string(b) + " contains no FFT bin (use fewer bands or a larger n_fft)");
    }
  }
}

MelFilterbank::MelFilterbank(const FeatureOptions& options) : num_bins_(options.n_fft / 2 + 1) {
  check_mel_bands(options);
  const int n_mels = options.n_mels;
  const std::vector<double> edges = mel_band_edges(options);
  const double bin_hz = static_cast<double>(options.sample_rate) / options.n_fft;
  const bool slaney_norm = options.norm == MelNorm::kSlaney;
  for (int b = 0; b < n_mels; ++b) {
    const double lower = edges[b], centre = edges[b + 1], upper = edges[b + 2];
    const double scale = slaney_norm ? 2.0 / (upper - lower) : 1.0;
    const int first = static_cast<int>(weights_.size());
    // Only bins strictly inside (lower, upper) can have non-zero weight.
    const int first_bin = std::max(0, static_cast<int>(std::floor(lower / bin_hz)));
    const int last_bin = std::min(num_bins_ - 1, static_cast<int>(std::ceil(upper / bin_hz)));
    int band_start = -1;
    for (int k = first_bin; k <= last_bin; ++k) {
      const double f = k * bin_hz;
      const double rising = (f - lower) / (centre - lower);
      const double falling = (upper - f) / (upper - centre);
      const double w = std::max(0.0, std::min(rising, falling));
      if (w <= 0.0) {
        if (band_start >= 0) break;  // past the triangle
        continue;
      }
      if (band_start < 0) band_start = k;
      weights_.push_back(static_cast<float>(w * scale));
    }
    start_.push_back(std::max(band_start, 0));  // never empty after check_mel_bands
    length_.push_back(static_cast<int>(weights_.size()) - first);
    offset_.push_back(first);
  }
}

void MelFilterbank::apply(const float* power, float* mel) const {
  apply_bands(power, mel, num_bands(), start_.data(), length_.data(), offset_.data(),
              weights_.data());
}

double MelFilterbank::max_band_gain() const {
  double gain = 0.0;
  for (int b = 0; b < num_bands(); ++b) {
    double sum = 0.0;
    for (int k = 0; k < length_[b]; ++k) sum += weights_[offset_[b] + k];
    gain = std::max(gain, sum);
  }
  return gain;
}

std::vector<float> MelFilterbank::dense() const {
  std::vector<float> out(static_cast<size_t>(num_bands()) * num_bins_, 0.0f);
  for (int b = 0; b < num_bands(); ++b) {
    for (int k = 0; k < length_[b]; ++k) {
      out[static_cast<size_t>(b) * num_bins_ + start_[b] + k] = weights_[offset_[b] + k];
    }
  }
  return out;
}

}  // namespace pyser
