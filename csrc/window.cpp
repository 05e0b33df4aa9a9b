#include "window.h"

#include <cmath>

namespace pyser {

std::vector<float> make_window(WindowKind kind, int win_length, bool periodic) {
  std::vector<float> w(win_length, 1.0f);
  if (kind == WindowKind::kRectangular || win_length == 1) return w;
  // Generalised cosine window a - (1-a)·cos(2πi/N); N = L (periodic) or L-1.
  const double a = kind == WindowKind::kHamming ? 0.54 : 0.5;
  const double denom = periodic ? win_length : win_length - 1;
  const double two_pi = 2.0 * std::acos(-1.0);
  for (int i = 0; i < win_length; ++i) {
    w[i] = static_cast<float>(a - (1.0 - a) * std::cos(two_pi * i / denom));
  }
  return w;
}

std::vector<float> frame_window(const FeatureOptions& options) {
  const std::vector<float> w = make_window(options.window, options.win_length,
                                           options.periodic);
  std::vector<float> framed(options.n_fft, 0.0f);
  const int left = (options.n_fft - options.win_length) / 2;
  for (int i = 0; i < options.win_length; ++i) framed[left + i] = w[i];
  return framed;
}

}  // namespace pyser
