#include "feature_config.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "fft.h"
#include "mel.h"
#include "samples.h"
#include "window.h"

namespace pyser {
namespace {

[[noreturn]] void fail(const std::string& field, const std::string& what) {
  throw std::invalid_argument("FeatureConfig." + field + " " + what);
}

template <typename T>
std::string str(T value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

// With |x| <= kMaxAbsSample, a bin's power is at most (Σ|w|·kMaxAbsSample)²
// and a Mel band's at most that times the band's weight sum. STFT powers stay
// below 3e32 for every valid n_fft; only Mel bands narrower than a bin with
// Slaney's area normalisation can weigh enough to overflow float32.
void check_power_range(const FeatureOptions& options) {
  const std::vector<float> window = frame_window(options);
  double window_sum = 0.0;
  for (float w : window) window_sum += std::fabs(w);
  const double max_bin = window_sum * kMaxAbsSample * window_sum * kMaxAbsSample;
  const double gain = MelFilterbank(options).max_band_gain();
  if (max_bin * std::max(1.0, gain) > FLT_MAX / 2) {
    fail("n_mels", "(with fmin and fmax) makes a Mel band so narrow that its weights sum to " +
                       str(gain) + ", and samples within |x| <= " + str(kMaxAbsSample) +
                       " could overflow float32 power; use wider bands (fewer n_mels, a "
                       "wider fmin..fmax) or norm=None");
  }
}

}  // namespace

FeatureKind parse_feature_kind(const std::string& name) {
  if (name == "mel") return FeatureKind::kMel;
  if (name == "stft") return FeatureKind::kStft;
  fail("kind", "must be 'mel' or 'stft', got '" + name + "'");
}

WindowKind parse_window(const std::string& name) {
  if (name == "hamming") return WindowKind::kHamming;
  if (name == "hann") return WindowKind::kHann;
  if (name == "rectangular" || name == "boxcar") return WindowKind::kRectangular;
  fail("window", "must be 'hamming', 'hann' or 'rectangular', got '" + name + "'");
}

MelNorm parse_mel_norm(const std::string& name) {
  if (name == "slaney") return MelNorm::kSlaney;
  if (name == "none") return MelNorm::kNone;
  fail("norm", "must be 'slaney' or 'none', got '" + name + "'");
}

PadMode parse_pad_mode(const std::string& name) {
  if (name == "reflect") return PadMode::kReflect;
  if (name == "constant") return PadMode::kConstant;
  fail("pad_mode", "must be 'reflect' or 'constant', got '" + name + "'");
}

const char* to_string(FeatureKind kind) { return kind == FeatureKind::kMel ? "mel" : "stft"; }

const char* to_string(WindowKind window) {
  switch (window) {
    case WindowKind::kHamming: return "hamming";
    case WindowKind::kHann: return "hann";
    case WindowKind::kRectangular: return "rectangular";
  }
  return "?";
}

const char* to_string(MelNorm norm) { return norm == MelNorm::kSlaney ? "slaney" : "none"; }

const char* to_string(PadMode mode) { return mode == PadMode::kReflect ? "reflect" : "constant"; }

bool FeatureOptions::operator==(const FeatureOptions& o) const {
  return kind == o.kind && sample_rate == o.sample_rate && n_fft == o.n_fft &&
         win_length == o.win_length && hop_length == o.hop_length && window == o.window &&
         periodic == o.periodic && n_mels == o.n_mels && fmin == o.fmin && fmax == o.fmax &&
         htk == o.htk && norm == o.norm && center == o.center && pad_mode == o.pad_mode &&
         amin == o.amin;
}

void FeatureOptions::validate() const {
  if (sample_rate <= 0) fail("sample_rate", "must be positive, got " + str(sample_rate));
  const bool pow2 = n_fft > 0 && (n_fft & (n_fft - 1)) == 0;
  if (!pow2 || n_fft < RealFft::kMinSize || n_fft > RealFft::kMaxSize) {
    fail("n_fft", "must be a power of two between 16 and 16384, got " + str(n_fft));
  }
  if (win_length <= 0) fail("win_length", "must be positive, got " + str(win_length));
  if (win_length > n_fft) {
    fail("win_length", "must be <= n_fft (" + str(n_fft) + "), got " + str(win_length));
  }
  if (hop_length <= 0) fail("hop_length", "must be positive, got " + str(hop_length));
  // The power is float32, so the floor must be a normal float32 (subnormals
  // would round to 0 or lose precision, and the fast log expects normals).
  if (!(amin >= FLT_MIN && amin <= FLT_MAX)) {
    fail("amin", "must be a normal float32 in [" + str(FLT_MIN) + ", " + str(FLT_MAX) +
                     "], got " + str(amin));
  }
  if (kind != FeatureKind::kMel) return;
  const double nyquist = sample_rate / 2.0;
  if (n_mels <= 0) fail("n_mels", "must be positive, got " + str(n_mels));
  if (!std::isfinite(fmin) || fmin < 0.0) fail("fmin", "must be finite and >= 0, got " + str(fmin));
  if (fmax) {
    if (!std::isfinite(*fmax)) fail("fmax", "must be finite, got " + str(*fmax));
    if (*fmax > nyquist) {
      fail("fmax", "must be <= the Nyquist frequency " + str(nyquist) + " Hz, got " + str(*fmax));
    }
  }
  if (fmax_hz() <= fmin) {
    fail("fmax", "must be > fmin (" + str(fmin) + " Hz), got " + str(fmax_hz()));
  }
  check_mel_bands(*this);
  check_power_range(*this);
}

ValidatedOptions::ValidatedOptions(const FeatureOptions& options) : options_(options) {
  options_.validate();
}

}  // namespace pyser
