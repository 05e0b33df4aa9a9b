// Options of the spectrogram features: typed, parsed once, validated once.
#pragma once

#include <optional>
#include <string>

namespace pyser {

enum class FeatureKind { kMel, kStft };
enum class WindowKind { kHamming, kHann, kRectangular };
enum class MelNorm { kSlaney, kNone };
enum class PadMode { kReflect, kConstant };

// The option spellings of librosa/pyser. parse_* throw std::invalid_argument
// naming the FeatureConfig field ("FeatureConfig.kind must be ..."); to_string
// gives the canonical spelling back.
FeatureKind parse_feature_kind(const std::string& name);  // "mel", "stft"
WindowKind parse_window(const std::string& name);          // "hamming", "hann", "rectangular"
                                                           // (or scipy's "boxcar")
MelNorm parse_mel_norm(const std::string& name);           // "slaney", "none"
PadMode parse_pad_mode(const std::string& name);           // "reflect", "constant"
const char* to_string(FeatureKind kind);
const char* to_string(WindowKind window);
const char* to_string(MelNorm norm);
const char* to_string(PadMode mode);

// Field names and defaults follow librosa (and the paper: 16 kHz, 40 ms
// Hamming window, 10 ms hop, 1024-point DFT, 128 Mel bands). A plain value
// that may hold anything; ValidatedOptions is what the extractors take.
struct FeatureOptions {
  FeatureKind kind = FeatureKind::kMel;  // n_mels bands, or n_fft/2+1 STFT bins
  int sample_rate = 16000;               // Hz
  int n_fft = 1024;                      // DFT size, samples; a power of two in [16, 16384]
  int win_length = 640;                  // analysis window, samples; <= n_fft, centred in the frame
  int hop_length = 160;                  // frame shift, samples
  WindowKind window = WindowKind::kHamming;
  bool periodic = true;                  // periodic (DFT-even, librosa/torch) or symmetric window
  int n_mels = 128;                      // Mel bands (kind mel)
  double fmin = 0.0;                     // lowest Mel band edge, Hz
  std::optional<double> fmax;            // highest Mel band edge, Hz; unset = sample_rate / 2
  bool htk = false;                      // HTK Mel scale instead of Slaney's
  MelNorm norm = MelNorm::kSlaney;       // Mel band normalisation: area (slaney) or none
  bool center = false;                   // offline only: pad n_fft/2 at both ends
                                         // (librosa center=True)
  PadMode pad_mode = PadMode::kReflect;  // padding for center
  double amin = 1e-10;                   // power floor before the log: 10·log10(max(power, amin));
                                         // a normal float32, since the power is float32

  // Throws std::invalid_argument naming the first bad field.
  void validate() const;

  bool operator==(const FeatureOptions& other) const;
  bool operator!=(const FeatureOptions& other) const { return !(*this == other); }

  int n_bins() const { return kind == FeatureKind::kMel ? n_mels : n_fft / 2 + 1; }
  double fmax_hz() const { return fmax ? *fmax : sample_rate / 2.0; }
};

// FeatureOptions that passed validate(), immutable. Every extractor takes one,
// so options are validated once, where the config is built, and never per call.
class ValidatedOptions {
 public:
  explicit ValidatedOptions(const FeatureOptions& options);  // validates; throws like validate()

  const FeatureOptions& get() const { return options_; }
  const FeatureOptions* operator->() const { return &options_; }
  int n_bins() const { return options_.n_bins(); }
  float amin() const { return static_cast<float>(options_.amin); }

  bool operator==(const ValidatedOptions& other) const { return options_ == other.options_; }
  bool operator!=(const ValidatedOptions& other) const { return !(*this == other); }

 private:
  FeatureOptions options_;
};

}  // namespace pyser
