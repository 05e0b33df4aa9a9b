#include "frame_features.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <thread>

#include "simd.h"
#include "window.h"

namespace pyser {
namespace {

// Natural log of normal, positive floats, branch-free so that it vectorises
// (libm's logf does not, and 128 calls per frame would cost as much as the
// FFT). The mantissa is normalised into [sqrt(1/2), sqrt(2)) by integer
// arithmetic (as musl's logf), then Cephes' logf polynomial gives log1p.
PYSER_INLINE float fast_log(float x) {
  constexpr int32_t kSqrtHalfBits = 0x3f3504f3;
  int32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  const int32_t e = (bits - kSqrtHalfBits) >> 23;
  const int32_t mantissa_bits = bits - e * (1 << 23);
  float m;
  std::memcpy(&m, &mantissa_bits, sizeof m);
  m -= 1.0f;
  const float z = m * m;
  float y = 7.0376836292e-2f;
  y = y * m - 1.1514610310e-1f;
  y = y * m + 1.1676998740e-1f;
  y = y * m - 1.2420140846e-1f;
  y = y * m + 1.4249322787e-1f;
  y = y * m - 1.6668057665e-1f;
  y = y * m + 2.0000714765e-1f;
  y = y * m - 2.4999993993e-1f;
  y = y * m + 3.3333331174e-1f;
  y = y * m * z - 0.5f * z;
  const float fe = static_cast<float>(e);
  return (m + y) + fe * 0.693147180559945f;
}

PYSER_MULTIVERSION
void power_to_db_kernel(float* PYSER_RESTRICT v, int n, float amin) {
  constexpr float kDbPerNeper = 4.342944819032518f;  // 10 / ln(10)
  for (int i = 0; i < n; ++i) v[i] = kDbPerNeper * fast_log(v[i] > amin ? v[i] : amin);
}

PYSER_MULTIVERSION
void power_spectrum(const float* PYSER_RESTRICT re, const float* PYSER_RESTRICT im,
                    float* PYSER_RESTRICT power, int n) {
  for (int k = 0; k < n; ++k) power[k] = re[k] * re[k] + im[k] * im[k];
}

// Index into [0, n) of position i (possibly outside) under numpy's 'reflect'.
size_t reflect_index(long long i, size_t n) {
  if (n == 1) return 0;
  const long long period = 2 * static_cast<long long>(n) - 2;
  i %= period;
  if (i < 0) i += period;
  return static_cast<size_t>(i < static_cast<long long>(n) ? i : period - i);
}

}  // namespace

void power_to_db(float* values, int n, float amin) { power_to_db_kernel(values, n, amin); }

FrameProcessor::FrameProcessor(const ValidatedOptions& options) : options_(options) {
  n_bins_ = options_.n_bins();
  fft_ = &real_fft_plan(options_->n_fft);
  window_ = frame_window(options_.get());
  if (options_->kind == FeatureKind::kMel) mel_ = std::make_unique<MelFilterbank>(options_.get());
  re_.resize(fft_->num_bins());
  im_.resize(fft_->num_bins());
  power_.resize(fft_->num_bins());
}

void FrameProcessor::compute(const float* frame, float* out) {
  fft_->forward(frame, window_.data(), re_.data(), im_.data());
  if (mel_) {
    power_spectrum(re_.data(), im_.data(), power_.data(), fft_->num_bins());
    mel_->apply(power_.data(), out);
  } else {
    power_spectrum(re_.data(), im_.data(), out, fft_->num_bins());
  }
  power_to_db(out, n_bins_, options_.amin());
}

size_t num_frames(const ValidatedOptions& options, size_t n) {
  const size_t hop = options->hop_length;
  if (options->center) return 1 + n / hop;
  const size_t n_fft = options->n_fft;
  return n < n_fft ? 0 : 1 + (n - n_fft) / hop;
}

namespace {

void extract_with(FrameProcessor& processor, const float* samples, size_t n, float* out) {
  const ValidatedOptions& options = processor.options();
  const size_t frames = num_frames(options, n);
  const size_t n_fft = options->n_fft, hop = options->hop_length;
  const long long pad = options->center ? n_fft / 2 : 0;
  const bool reflect = options->pad_mode == PadMode::kReflect;
  std::vector<float> edge(n_fft);
  for (size_t t = 0; t < frames; ++t) {
    const long long start = static_cast<long long>(t * hop) - pad;
    // Forming a pointer outside the signal is undefined behaviour even unread
    // (UBSan caught samples + start with start < 0), so edge frames are
    // gathered through indices.
    const float* frame;
    if (start >= 0 && start + static_cast<long long>(n_fft) <= static_cast<long long>(n)) {
      frame = samples + start;
    } else {
      // Only the first and last frames of center=True reach past the signal.
      for (size_t i = 0; i < n_fft; ++i) {
        const long long j = start + static_cast<long long>(i);
        const bool inside = j >= 0 && j < static_cast<long long>(n);
        if (inside) {
          edge[i] = samples[j];
        } else {
          edge[i] = (reflect && n > 0) ? samples[reflect_index(j, n)] : 0.0f;
        }
      }
      frame = edge.data();
    }
    processor.compute(frame, out + t * processor.n_bins());
  }
}

}  // namespace

void extract_features(const ValidatedOptions& options, const SampleView& samples, float* out) {
  // Building a processor (window, Mel weights) costs as much as a few frames,
  // so each thread keeps the one it used last: short utterances in a loop
  // with one config pay for it once.
  thread_local std::unique_ptr<FrameProcessor> last;
  if (!last || last->options() != options) {
    last.reset();
    last = std::make_unique<FrameProcessor>(options);
  }
  std::vector<float> converted;  // used unless the samples are native float32 already
  extract_with(*last, samples_as_float(samples, converted), samples.size, out);
}

void extract_features_batch(const ValidatedOptions& options, const std::vector<SignalView>& batch,
                            int num_threads) {
  if (num_threads <= 0) num_threads = static_cast<int>(std::thread::hardware_concurrency());
  num_threads = std::max(1, std::min<int>(num_threads, static_cast<int>(batch.size())));
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  struct Failure {
    size_t index = SIZE_MAX;
    std::exception_ptr error;
  };
  // Signals are handed out in order, so the lowest failing index among the
  // workers' failures is the first bad signal of the batch.
  auto worker = [&](Failure* failure) {
    size_t i = 0;
    try {
      FrameProcessor processor(options);
      std::vector<float> converted;
      for (i = next++; i < batch.size() && !failed; i = next++) {
        const SampleView& samples = batch[i].samples;
        extract_with(processor, samples_as_float(samples, converted), samples.size, batch[i].out);
      }
    } catch (const std::invalid_argument& e) {
      failed = true;
      *failure = {i, std::make_exception_ptr(std::invalid_argument(
                         "signal " + std::to_string(i) + " of the batch: " + e.what()))};
    } catch (...) {
      failed = true;
      *failure = {i, std::current_exception()};
    }
  };
  std::vector<Failure> failures(num_threads);
  std::vector<std::thread> threads;
  for (int t = 1; t < num_threads; ++t) threads.emplace_back(worker, &failures[t]);
  worker(&failures[0]);
  for (auto& thread : threads) thread.join();
  const Failure* first = nullptr;
  for (const Failure& f : failures) {
    if (f.error && (!first || f.index < first->index)) first = &f;
  }
  if (first) std::rethrow_exception(first->error);
}

}  // namespace pyser
