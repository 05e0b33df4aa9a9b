#include "fft.h"

#include <array>
#include <cmath>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>

#include "simd.h"

namespace pyser {
namespace {

bool is_power_of_two(int n) { return n > 0 && (n & (n - 1)) == 0; }

int log2_int(int n) {
  int k = 0;
  while ((1 << k) < n) ++k;
  return k;
}

// The first three radix-2 stages (spans 2, 4, 8) as one radix-8 pass: their
// twiddles are 1, -i and (±1 - i)/sqrt(2), so they need almost no multiplies,
// and their short inner loops would not vectorise as separate stages.
PYSER_INLINE void radix8_first_pass(float* PYSER_RESTRICT re, float* PYSER_RESTRICT im, int m) {
  constexpr float kHalfSqrt2 = 0.70710678118654752f;
  for (int i = 0; i < m; i += 8) {
    float r[8], q[8];
    for (int j = 0; j < 8; j += 2) {  // span 2
      r[j] = re[i + j] + re[i + j + 1];
      q[j] = im[i + j] + im[i + j + 1];
      r[j + 1] = re[i + j] - re[i + j + 1];
      q[j + 1] = im[i + j] - im[i + j + 1];
    }
    for (int j = 0; j < 8; j += 4) {  // span 4: twiddles 1, -i
      const float ar = r[j], ai = q[j], br = r[j + 2], bi = q[j + 2];
      r[j] = ar + br;
      q[j] = ai + bi;
      r[j + 2] = ar - br;
      q[j + 2] = ai - bi;
      const float cr = r[j + 1], ci = q[j + 1], dr = q[j + 3], di = -r[j + 3];  // -i·x
      r[j + 1] = cr + dr;
      q[j + 1] = ci + di;
      r[j + 3] = cr - dr;
      q[j + 3] = ci - di;
    }
    // span 8: twiddles w^k = e^{-2πik/8}, k = 0..3
    const float t1r = kHalfSqrt2 * (r[5] + q[5]), t1i = kHalfSqrt2 * (q[5] - r[5]);
    const float t2r = q[6], t2i = -r[6];
    const float t3r = kHalfSqrt2 * (q[7] - r[7]), t3i = -kHalfSqrt2 * (r[7] + q[7]);
    re[i] = r[0] + r[4];
    im[i] = q[0] + q[4];
    re[i + 4] = r[0] - r[4];
    im[i + 4] = q[0] - q[4];
    re[i + 1] = r[1] + t1r;
    im[i + 1] = q[1] + t1i;
    re[i + 5] = r[1] - t1r;
    im[i + 5] = q[1] - t1i;
    re[i + 2] = r[2] + t2r;
    im[i + 2] = q[2] + t2i;
    re[i + 6] = r[2] - t2r;
    im[i + 6] = q[2] - t2i;
    re[i + 3] = r[3] + t3r;
    im[i + 3] = q[3] + t3i;
    re[i + 7] = r[3] - t3r;
    im[i + 7] = q[3] - t3i;
  }
}

// One radix-2 stage of span 2h: (a, b) -> (a + w^k b, a - w^k b).
PYSER_INLINE void radix2_stage(float* PYSER_RESTRICT re, float* PYSER_RESTRICT im, int m, int h,
                               const float* PYSER_RESTRICT wr, const float* PYSER_RESTRICT wi) {
  for (int base = 0; base < m; base += 2 * h) {
    float* PYSER_RESTRICT ar = re + base;
    float* PYSER_RESTRICT ai = im + base;
    float* PYSER_RESTRICT br = re + base + h;
    float* PYSER_RESTRICT bi = im + base + h;
    PYSER_IVDEP
    for (int k = 0; k < h; ++k) {
      const float tr = br[k] * wr[k] - bi[k] * wi[k];
      const float ti = br[k] * wi[k] + bi[k] * wr[k];
      br[k] = ar[k] - tr;
      bi[k] = ai[k] - ti;
      ar[k] += tr;
      ai[k] += ti;
    }
  }
}

// Two radix-2 stages (spans 2h and 4h) fused into one radix-4 pass, so each
// element is loaded and stored once instead of twice. w1 = twiddles of span
// 2h, w2 = those of span 4h; w2^{k+h} = -i·w2^k.
PYSER_INLINE void radix4_stage(float* PYSER_RESTRICT re, float* PYSER_RESTRICT im, int m, int h,
                               const float* PYSER_RESTRICT w1r, const float* PYSER_RESTRICT w1i,
                               const float* PYSER_RESTRICT w2r, const float* PYSER_RESTRICT w2i) {
  for (int base = 0; base < m; base += 4 * h) {
    float* PYSER_RESTRICT r0 = re + base;
    float* PYSER_RESTRICT i0 = im + base;
    float* PYSER_RESTRICT r1 = r0 + h;
    float* PYSER_RESTRICT i1 = i0 + h;
    float* PYSER_RESTRICT r2 = r1 + h;
    float* PYSER_RESTRICT i2 = i1 + h;
    float* PYSER_RESTRICT r3 = r2 + h;
    float* PYSER_RESTRICT i3 = i2 + h;
    PYSER_IVDEP
    for (int k = 0; k < h; ++k) {
      // span 2h: (x0, x1) and (x2, x3) with w1^k
      const float t1r = r1[k] * w1r[k] - i1[k] * w1i[k];
      const float t1i = r1[k] * w1i[k] + i1[k] * w1r[k];
      const float t3r = r3[k] * w1r[k] - i3[k] * w1i[k];
      const float t3i = r3[k] * w1i[k] + i3[k] * w1r[k];
      const float y0r = r0[k] + t1r, y0i = i0[k] + t1i;
      const float y1r = r0[k] - t1r, y1i = i0[k] - t1i;
      const float y2r = r2[k] + t3r, y2i = i2[k] + t3i;
      const float y3r = r2[k] - t3r, y3i = i2[k] - t3i;
      // span 4h: (y0, y2) with w2^k and (y1, y3) with -i·w2^k
      const float u2r = y2r * w2r[k] - y2i * w2i[k];
      const float u2i = y2r * w2i[k] + y2i * w2r[k];
      const float v3r = y3r * w2r[k] - y3i * w2i[k];
      const float v3i = y3r * w2i[k] + y3i * w2r[k];
      const float u3r = v3i, u3i = -v3r;  // -i·v3
      r0[k] = y0r + u2r;
      i0[k] = y0i + u2i;
      r2[k] = y0r - u2r;
      i2[k] = y0i - u2i;
      r1[k] = y1r + u3r;
      i1[k] = y1i + u3i;
      r3[k] = y1r - u3r;
      i3[k] = y1i - u3i;
    }
  }
}

// Complex FFT of size m (>= 8) on bit-reversed split data, in place. tw
// holds the twiddles of spans 16, 32, ..., m concatenated (h values each).
PYSER_MULTIVERSION
void complex_fft(float* PYSER_RESTRICT re, float* PYSER_RESTRICT im, int m,
                 const float* PYSER_RESTRICT tw_re, const float* PYSER_RESTRICT tw_im) {
  radix8_first_pass(re, im, m);
  int h = 8;
  for (; 4 * h <= m; h *= 4) {
    radix4_stage(re, im, m, h, tw_re, tw_im, tw_re + h, tw_im + h);
    tw_re += 3 * h;
    tw_im += 3 * h;
  }
  if (h < m) radix2_stage(re, im, m, h, tw_re, tw_im);
}

// Turns the size-m complex spectrum Z of z[j] = x[2j] + i·x[2j+1] into the
// first m+1 bins of the size-2m real spectrum X, in place:
//   E = (Z[k] + conj Z[m-k]) / 2,  O = (Z[k] - conj Z[m-k]) / 2i,
//   X[k] = E + W^k O,  X[m-k] = conj(E - W^k O),  W = e^{-2πi/2m}.
PYSER_MULTIVERSION
void split_real_spectrum(float* PYSER_RESTRICT re, float* PYSER_RESTRICT im, int m,
                         const float* PYSER_RESTRICT w_re, const float* PYSER_RESTRICT w_im) {
  const float z0r = re[0], z0i = im[0];
  re[0] = z0r + z0i;
  im[0] = 0.0f;
  re[m] = z0r - z0i;
  im[m] = 0.0f;
  im[m / 2] = -im[m / 2];  // k = m/2 pairs with itself: X = conj(Z)
  // k runs over (0, m/2) and j = m - k over (m/2, m): disjoint halves.
  PYSER_IVDEP
  for (int k = 1; k < m / 2; ++k) {
    const int j = m - k;
    const float er = 0.5f * (re[k] + re[j]);
    const float ei = 0.5f * (im[k] - im[j]);
    const float or_ = 0.5f * (im[k] + im[j]);
    const float oi = -0.5f * (re[k] - re[j]);
    const float tr = w_re[k] * or_ - w_im[k] * oi;
    const float ti = w_re[k] * oi + w_im[k] * or_;
    re[k] = er + tr;
    im[k] = ei + ti;
    re[j] = er - tr;
    im[j] = -(ei - ti);
  }
}

// Loads z[bitrev(j)] = x[2j] + i·x[2j+1] (windowed): the input permutation
// of the decimation-in-time FFT (sequential loads, scattered stores: faster
// here than AVX2 gathers).
PYSER_MULTIVERSION
void load_bit_reversed(const float* PYSER_RESTRICT in, const float* PYSER_RESTRICT weights,
                       const int32_t* PYSER_RESTRICT rev, float* PYSER_RESTRICT re,
                       float* PYSER_RESTRICT im, int m) {
  for (int j = 0; j < m; ++j) {
    re[rev[j]] = in[2 * j] * weights[2 * j];
    im[rev[j]] = in[2 * j + 1] * weights[2 * j + 1];
  }
}

}  // namespace

RealFft::RealFft(int n) : n_(n), m_(n / 2) {
  if (!is_power_of_two(n) || n < kMinSize || n > kMaxSize) {
    throw std::invalid_argument("FFT size must be a power of two between " +
                                std::to_string(kMinSize) + " and " + std::to_string(kMaxSize) +
                                ", got " + std::to_string(n));
  }
  const int bits = log2_int(m_);
  bitrev_.resize(m_);
  for (int i = 0; i < m_; ++i) {
    int r = 0;
    for (int b = 0; b < bits; ++b) r |= ((i >> b) & 1) << (bits - 1 - b);
    bitrev_[i] = r;
  }
  // Twiddles in double so that float32 error does not grow with the size.
  const double two_pi = 2.0 * std::acos(-1.0);
  for (int half = 8; half < m_; half *= 2) {
    for (int k = 0; k < half; ++k) {
      const double angle = -two_pi * k / (2.0 * half);
      tw_re_.push_back(static_cast<float>(std::cos(angle)));
      tw_im_.push_back(static_cast<float>(std::sin(angle)));
    }
  }
  ones_.assign(n_, 1.0f);
  split_re_.resize(m_ / 2 + 1);
  split_im_.resize(m_ / 2 + 1);
  for (int k = 0; k <= m_ / 2; ++k) {
    const double angle = -two_pi * k / n_;
    split_re_[k] = static_cast<float>(std::cos(angle));
    split_im_[k] = static_cast<float>(std::sin(angle));
  }
}

void RealFft::forward(const float* in, const float* weights, float* re, float* im) const {
  load_bit_reversed(in, weights ? weights : ones_.data(), bitrev_.data(), re, im, m_);
  complex_fft(re, im, m_, tw_re_.data(), tw_im_.data());
  split_real_spectrum(re, im, m_, split_re_.data(), split_im_.data());
}

const RealFft& real_fft_plan(int n) {
  if (!is_power_of_two(n) || n < RealFft::kMinSize || n > RealFft::kMaxSize) {
    RealFft validate(n);  // throws with the message
  }
  static std::array<std::unique_ptr<RealFft>, 32> plans;
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  auto& plan = plans[log2_int(n)];
  if (!plan) plan = std::make_unique<RealFft>(n);
  return *plan;
}

}  // namespace pyser
