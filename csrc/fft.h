// Real-input FFT for power-of-two sizes, written for pyser (no FFT library).
//
// A real FFT of size n is computed as a complex FFT of size n/2 on the
// even/odd samples packed as re/im, followed by the standard split step.
// The complex FFT is an iterative decimation-in-time over split (separate
// real and imaginary) arrays: a radix-8 first pass fused with the
// bit-reversed load, then radix-4 passes (and one radix-2 pass for odd
// powers), whose butterfly loops run over contiguous memory with contiguous
// per-stage twiddles and vectorise.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace pyser {

class RealFft {
 public:
  static constexpr int kMinSize = 16;
  static constexpr int kMaxSize = 16384;

  // Throws std::invalid_argument unless n is a power of two in [16, 16384].
  explicit RealFft(int n);

  int size() const { return n_; }
  int num_bins() const { return n_ / 2 + 1; }

  // Spectrum of n real samples.
  // in: n samples; weights: n window weights or nullptr (applied to `in`).
  // re, im: num_bins() outputs each (also used as work space).
  void forward(const float* in, const float* weights, float* re, float* im) const;

 private:
  int n_;                       // real size
  int m_;                       // complex size n/2
  std::vector<int32_t> block_rev_;  // bit reversal of the m/8 block indices
  std::vector<float> tw_re_;    // per-stage twiddles e^{-2πik/s}, spans 16, 32, ..., m concatenated
  std::vector<float> tw_im_;
  std::vector<float> split_re_; // e^{-2πik/n}, k in [0, m/2]
  std::vector<float> split_im_;
  std::vector<float> ones_;     // the weights when none are given
};

// Shared, immutable plan for size n, built once per size on first use
// (thread-safe); throws like the constructor.
const RealFft& real_fft_plan(int n);

}  // namespace pyser
