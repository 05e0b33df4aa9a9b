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

// The first three radix-2 stages (spans 2, 4, 8) of 8 points in place: their
// twiddles are 1, -i and (±1 - i)/sqrt(2), so they need almost no multiplies.
PYSER_INLINE void radix8_butterfly(float* r, float* q) {
  constexpr float kHalfSqrt2 = 0.70710678118654752f;
  for (int j = 0; j < 8; j += 2) {  // span 2
    const float ar = r[j], ai = q[j];
    r[j] = ar + r[j + 1];
    q[j] = ai + q[j + 1];
    r[j + 1] = ar - r[j + 1];
    q[j + 1] = ai - q[j + 1];
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
  const float t[4][2] = {{r[4], q[4]},
                         {kHalfSqrt2 * (r[5] + q[5]), kHalfSqrt2 * (q[5] - r[5])},
                         {q[6], -r[6]},
                         {kHalfSqrt2 * (q[7] - r[7]), -kHalfSqrt2 * (r[7] + q[7])}};
  for (int k = 0; k < 4; ++k) {
    const float ar = r[k], ai = q[k];
    r[k] = ar + t[k][0];
    q[k] = ai + t[k][1];
    r[k + 4] = ar - t[k][0];
    q[k + 4] = ai - t[k][1];
  }
}

// Loads z[j] = x[2j] + i·x[2j+1] (windowed) in the bit-reversed order of the
// decimation-in-time FFT and runs its first three stages on the way, saving a
// pass over the data. Block Q (outputs 8Q..8Q+7) holds z[rev3(t)·m/8 + q]
// with q = bitrev(Q) over the upper bits, so iterating over q reads the input
// in eight contiguous streams.
PYSER_MULTIVERSION
void load_first_stages(const float* PYSER_RESTRICT in, const float* PYSER_RESTRICT weights,
                       const int32_t* PYSER_RESTRICT block_rev, float* PYSER_RESTRICT re,
                       float* PYSER_RESTRICT im, int m) {
  static constexpr int kRev3[8] = {0, 4, 2, 6, 1, 5, 3, 7};
  const int eighth = m / 8;
  for (int q = 0; q < eighth; ++q) {
    float r[8], s[8];
    for (int t = 0; t < 8; ++t) {
      const int j = 2 * (kRev3[t] * eighth + q);
      r[t] = in[j] * weights[j];
      s[t] = in[j + 1] * weights[j + 1];
    }
    radix8_butterfly(r, s);
    float* PYSER_RESTRICT out_re = re + 8 * block_rev[q];
    float* PYSER_RESTRICT out_im = im + 8 * block_rev[q];
    for (int t = 0; t < 8; ++t) {
      out_re[t] = r[t];
      out_im[t] = s[t];
    }
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

// The complex FFT's stages of spans 16, 32, ..., m, in place, after
// load_first_stages. tw holds their twiddles concatenated (h values each).
PYSER_MULTIVERSION
void complex_fft_stages(float* PYSER_RESTRICT re, float* PYSER_RESTRICT im, int m,
                        const float* PYSER_RESTRICT tw_re, const float* PYSER_RESTRICT tw_im) {
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

}  // namespace

RealFft::RealFft(int n) : n_(n), m_(n / 2) {
  if (!is_power_of_two(n) || n < kMinSize || n > kMaxSize) {
    throw std::invalid_argument("FFT size must be a power of two between " +
                                std::to_string(kMinSize) + " and " + std::to_string(kMaxSize) +
                                ", got " + std::to_string(n));
  }
  const int block_bits = log2_int(m_ / 8);
  block_rev_.resize(m_ / 8);
  for (int i = 0; i < m_ / 8; ++i) {
    int r = 0;
    for (int b = 0; b < block_bits; ++b) r |= ((i >> b) & 1) << (block_bits - 1 - b);
    block_rev_[i] = r;
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
  load_first_stages(in, weights ? weights : ones_.data(), block_rev_.data(), re, im, m_);
  complex_fft_stages(re, im, m_, tw_re_.data(), tw_im_.data());
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
