// Options of the spectrogram features, validated in one place.
#pragma once

#include <optional>
#include <string>

namespace pyser {

enum class FeatureKind { kMel, kStft };
enum class WindowKind { kHamming, kHann, kRectangular };
enum class PadMode { kReflect, kConstant };

// Field names and defaults follow librosa (and the paper: 16 kHz, 40 ms
// Hamming window, 10 ms hop, 1024-point DFT, 128 Mel bands).
struct FeatureOptions {
  std::string kind = "mel";        // "mel" (n_mels bands) or "stft" (n_fft/2+1 bins)
  int sample_rate = 16000;         // Hz
  int n_fft = 1024;                // DFT size, samples; a power of two in [16, 16384]
  int win_length = 640;            // analysis window, samples; <= n_fft, centred in the frame
  int hop_length = 160;            // frame shift, samples
  std::string window = "hamming";  // "hamming", "hann" or "rectangular"
  bool periodic = true;            // periodic (DFT-even, librosa/torch) or symmetric window
  int n_mels = 128;                // Mel bands (kind "mel")
  double fmin = 0.0;               // lowest Mel band edge, Hz
  std::optional<double> fmax;      // highest Mel band edge, Hz; unset = sample_rate / 2
  bool htk = false;                // HTK Mel scale instead of Slaney's
  std::string norm = "slaney";     // Mel band normalisation: "slaney" (area) or "none"
  bool center = false;             // offline only: pad n_fft/2 at both ends (librosa center=True)
  std::string pad_mode = "reflect";  // padding for center: "reflect" or "constant" (zeros)
  double amin = 1e-10;             // power floor before the log: 10·log10(max(power, amin))

  // Throws std::invalid_argument naming the first bad field.
  void validate() const;

  bool operator==(const FeatureOptions& other) const;
  bool operator!=(const FeatureOptions& other) const { return !(*this == other); }

  int n_bins() const;  // n_mels for "mel", n_fft/2+1 for "stft"
  double fmax_hz() const { return fmax ? *fmax : sample_rate / 2.0; }
  FeatureKind kind_enum() const;
  WindowKind window_enum() const;
  PadMode pad_mode_enum() const;
};

}  // namespace pyser
