// Analysis windows.
#pragma once

#include <vector>

#include "feature_config.h"

namespace pyser {

// The window of `win_length` samples ("periodic" = DFT-even, as librosa's
// get_window(fftbins=True) and torch's default).
std::vector<float> make_window(WindowKind kind, int win_length, bool periodic);

// The window zero-padded to n_fft samples and centred as librosa's
// util.pad_center does (left padding (n_fft - win_length) / 2, rounded down).
std::vector<float> frame_window(const FeatureOptions& options);

}  // namespace pyser
