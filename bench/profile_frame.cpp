// Per-stage profile of pyser's frame pipeline, without Python.
//
// Built from csrc/ (not the installed, stripped extension) with symbols by
// `python bench/bench_features.py --perf`, which runs it under `perf record`
// and attributes samples to the stage functions (bit-reverse + window gather
// in RealFft::forward, complex_fft, split_real_spectrum, power_spectrum,
// MelFilterbank::apply / apply_bands, power_to_db_kernel). It also times the
// public stages with std::chrono and prints one "key value" line each.
//
// usage: profile_frame [seconds_of_audio=60] [repeats=20]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "fft.h"
#include "frame_features.h"
#include "mel.h"
#include "window.h"

namespace {

using Clock = std::chrono::steady_clock;

// Deterministic noise with a 4 Hz amplitude envelope (xorshift32, no <random>
// so that the signal is the same on every standard library).
std::vector<float> test_signal(size_t n) {
  std::vector<float> x(n);
  uint32_t s = 0x12345678u;
  for (size_t i = 0; i < n; ++i) {
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    const float u = static_cast<float>(s) * (1.0f / 4294967296.0f) - 0.5f;
    const float env = 0.5f * (1.0f + std::sin(2.0f * 3.14159265f * 4.0f * i / 16000.0f));
    x[i] = 0.2f * env * env * u;
  }
  return x;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Median over repeats of the ns per frame of body(frame_index).
template <typename Body>
double ns_per_frame(size_t frames, int repeats, Body body) {
  std::vector<double> per_frame;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = Clock::now();
    for (size_t t = 0; t < frames; ++t) body(t);
    const auto t1 = Clock::now();
    per_frame.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count() / frames);
  }
  return median(per_frame);
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 60.0;
  const int repeats = argc > 2 ? std::atoi(argv[2]) : 20;
  const pyser::FeatureOptions options;  // the paper's defaults
  const pyser::ValidatedOptions validated(options);
  const size_t n = static_cast<size_t>(seconds * options.sample_rate);
  const std::vector<float> x = test_signal(n);
  const size_t frames = pyser::num_frames(validated, n);
  std::vector<float> out(frames * options.n_bins());

  // Whole pipeline, the way extract_features runs it (this is what perf sees most).
  std::vector<double> whole;
  for (int r = 0; r < repeats + 2; ++r) {
    const auto t0 = Clock::now();
    pyser::extract_features(validated, pyser::SampleView::contiguous(x.data(), n), out.data());
    const auto t1 = Clock::now();
    if (r >= 2) whole.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count());
  }
  volatile float sink = out[frames / 2];
  (void)sink;

  // The public stages one at a time over the same frames.
  const pyser::RealFft& fft = pyser::real_fft_plan(options.n_fft);
  const std::vector<float> window = pyser::frame_window(options);
  const pyser::MelFilterbank mel(options);
  const int bins = fft.num_bins();
  std::vector<float> re(bins), im(bins), power(bins * frames), bands(options.n_mels * frames);
  const size_t hop = options.hop_length;
  const double fft_ns = ns_per_frame(frames, repeats, [&](size_t t) {
    fft.forward(x.data() + t * hop, window.data(), re.data(), im.data());
  });
  for (size_t t = 0; t < frames; ++t) {  // real power spectra for the next stages
    fft.forward(x.data() + t * hop, window.data(), re.data(), im.data());
    for (int k = 0; k < bins; ++k) power[t * bins + k] = re[k] * re[k] + im[k] * im[k];
  }
  const double mel_ns = ns_per_frame(frames, repeats, [&](size_t t) {
    mel.apply(power.data() + t * bins, bands.data() + t * options.n_mels);
  });
  std::vector<float> db(bands.size());
  const double db_ns = ns_per_frame(frames, repeats, [&](size_t t) {
    std::copy_n(bands.data() + t * options.n_mels, options.n_mels, db.data() + t * options.n_mels);
    pyser::power_to_db(db.data() + t * options.n_mels, options.n_mels,
                       static_cast<float>(options.amin));
  });

  std::printf("frames %zu\n", frames);
  std::printf("whole_ns_per_frame %.1f\n", median(whole) / frames);
  std::printf("forward_ns_per_frame %.1f\n", fft_ns);  // window + bit reversal + FFT + split
  std::printf("mel_ns_per_frame %.1f\n", mel_ns);
  std::printf("db_ns_per_frame %.1f\n", db_ns);  // includes a 128-float copy
  std::printf("x_real_time %.0f\n", seconds * 1e9 / median(whole));
  return 0;
}
