// The Python binding of the C++ core: numpy conversions, GIL policy and
// docstrings only (no DSP here). std::invalid_argument becomes ValueError.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <complex>
#include <cstdint>
#include <string>
#include <vector>

#include "fft.h"
#include "frame_features.h"
#include "mel.h"
#include "samples.h"
#include "streaming_features.h"
#include "window.h"

namespace py = pybind11;
using pyser::FeatureOptions;
using pyser::ValidatedOptions;

namespace {

using FloatArray = py::array_t<float, py::array::c_style>;

std::string shape_of(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

// Describes a 1-D float32/float64/int16 numpy array (either byte order, any
// strides) for the core's input contract (samples.h), which converts and
// checks the samples; other inputs raise ValueError. The view points into
// obj's memory: the caller holds a reference to obj for as long as it uses
// the view (with the GIL released, nothing else keeps it alive).
pyser::SampleView describe_waveform(const py::handle& obj) {
  if (!py::isinstance<py::array>(obj)) {
    throw py::value_error("waveform must be a numpy array, got " +
                          std::string(py::str(py::type::of(obj).attr("__name__"))));
  }
  const auto array = py::reinterpret_borrow<py::array>(obj);
  if (array.ndim() != 1) {
    throw py::value_error("waveform must be 1-D mono samples, got shape " + shape_of(array) +
                          "; mix channels down to mono first");
  }
  const py::dtype dtype = array.dtype();
  const char kind = dtype.kind();
  const py::ssize_t size = dtype.itemsize();
  pyser::SampleView view;
  if (kind == 'f' && size == 4) {
    view.type = pyser::SampleType::kFloat32;
  } else if (kind == 'f' && size == 8) {
    view.type = pyser::SampleType::kFloat64;
  } else if (kind == 'i' && size == 2) {
    view.type = pyser::SampleType::kInt16;
  } else {
    throw py::value_error("waveform dtype must be float32, float64 or int16 (either byte order), "
                          "got " + std::string(py::str(dtype)));
  }
  // numpy writes '=' for native order (and '|' where order does not apply).
  const char order = dtype.byteorder();
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  view.byte_swapped = order == '<';
#else
  view.byte_swapped = order == '>';
#endif
  view.data = array.data();
  view.size = static_cast<size_t>(array.shape(0));
  view.stride = array.strides(0);
  return view;
}

FloatArray new_frames(size_t frames, int n_bins) {
  return FloatArray({static_cast<py::ssize_t>(frames), static_cast<py::ssize_t>(n_bins)});
}

// A string option as a Python property: set through the core's parser (a bad
// spelling raises ValueError at once), read back in its canonical spelling.
template <typename Enum, Enum FeatureOptions::*field>
void def_enum_option(py::class_<FeatureOptions>& cls, const char* name,
                     Enum (*parse)(const std::string&)) {
  cls.def_property(
      name, [](const FeatureOptions& o) { return std::string(pyser::to_string(o.*field)); },
      [parse](FeatureOptions& o, const std::string& value) { o.*field = parse(value); });
}

// The argument objects of a bound function stay referenced until it returns.
FloatArray extract(const ValidatedOptions& options, const py::object& waveform) {
  const pyser::SampleView samples = describe_waveform(waveform);
  auto out = new_frames(pyser::num_frames(options, samples.size), options.n_bins());
  float* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    pyser::extract_features(options, samples, dst);
  }
  return out;
}

py::list extract_batch(const ValidatedOptions& options, const py::list& waveforms,
                       int num_threads) {
  // References of their own: another thread may change the list while the
  // GIL is released.
  std::vector<py::object> inputs;
  std::vector<pyser::SignalView> views;
  py::list outputs;
  for (size_t i = 0; i < waveforms.size(); ++i) {
    pyser::SampleView samples;
    try {
      inputs.push_back(waveforms[i]);
      samples = describe_waveform(inputs.back());
    } catch (const py::value_error& e) {
      throw py::value_error("waveforms[" + std::to_string(i) + "]: " + e.what());
    }
    auto out = new_frames(pyser::num_frames(options, samples.size), options.n_bins());
    views.push_back({samples, out.mutable_data()});
    outputs.append(out);
  }
  {
    py::gil_scoped_release release;
    pyser::extract_features_batch(options, views, num_threads);
  }
  return outputs;
}

// GIL policy of StreamingFeatures: the stream serialises its calls with its
// own mutex, and every call that may wait for that mutex releases the GIL
// first. No thread ever waits for the GIL while it holds a stream's mutex
// (the core never calls back into Python), so the two locks cannot deadlock,
// and a long chunk on one thread never stalls the interpreter.
FloatArray accept(pyser::StreamingFeatures& stream, const py::object& chunk) {
  const pyser::SampleView samples = describe_waveform(chunk);
  // How many frames the chunk completes depends on what a racing call
  // appends first, so the output is sized for the most it can complete
  // (state-independent) and shrunk to what was written.
  const size_t capacity = stream.max_frames_completed_by(samples.size);
  auto out = new_frames(capacity, stream.n_bins());
  float* dst = out.mutable_data();
  size_t written;
  {
    py::gil_scoped_release release;
    written = stream.accept_waveform(samples, dst, capacity);
  }
  if (written < capacity) {
    out.resize({static_cast<py::ssize_t>(written), static_cast<py::ssize_t>(stream.n_bins())});
  }
  return out;
}

py::array_t<std::complex<float>> rfft(const py::object& signal) {
  const pyser::SampleView samples = describe_waveform(signal);
  std::vector<float> converted;
  const float* x = pyser::samples_as_float(samples, converted);
  const int n = samples.size > 1u << 30 ? -1 : static_cast<int>(samples.size);  // -1: refused
  const pyser::RealFft& plan = pyser::real_fft_plan(n);
  std::vector<float> re(plan.num_bins()), im(plan.num_bins());
  plan.forward(x, nullptr, re.data(), im.data());
  py::array_t<std::complex<float>> out(plan.num_bins());
  auto* dst = out.mutable_data();
  for (int k = 0; k < plan.num_bins(); ++k) dst[k] = {re[k], im[k]};
  return out;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "pyser's C++ feature engine (use pyser.features instead of this module).";
  m.attr("MAX_ABS_SAMPLE") = pyser::kMaxAbsSample;

  py::class_<FeatureOptions> options(
      m, "FeatureOptions",
      "Unvalidated options, field by field; string fields are parsed when set. "
      "ValidatedOptions(options) checks them once; the extractors take only that.");
  options.def(py::init<>())
      .def_readwrite("sample_rate", &FeatureOptions::sample_rate)
      .def_readwrite("n_fft", &FeatureOptions::n_fft)
      .def_readwrite("win_length", &FeatureOptions::win_length)
      .def_readwrite("hop_length", &FeatureOptions::hop_length)
      .def_readwrite("periodic", &FeatureOptions::periodic)
      .def_readwrite("n_mels", &FeatureOptions::n_mels)
      .def_readwrite("fmin", &FeatureOptions::fmin)
      .def_readwrite("fmax", &FeatureOptions::fmax)
      .def_readwrite("htk", &FeatureOptions::htk)
      .def_readwrite("center", &FeatureOptions::center)
      .def_readwrite("amin", &FeatureOptions::amin);
  def_enum_option<pyser::FeatureKind, &FeatureOptions::kind>(options, "kind",
                                                              &pyser::parse_feature_kind);
  def_enum_option<pyser::WindowKind, &FeatureOptions::window>(options, "window",
                                                               &pyser::parse_window);
  def_enum_option<pyser::MelNorm, &FeatureOptions::norm>(options, "norm", &pyser::parse_mel_norm);
  def_enum_option<pyser::PadMode, &FeatureOptions::pad_mode>(options, "pad_mode",
                                                              &pyser::parse_pad_mode);

  py::class_<ValidatedOptions>(m, "ValidatedOptions",
                               "FeatureOptions that passed validation; immutable.")
      .def(py::init<const FeatureOptions&>(), py::arg("options"),
           "Validate options (ValueError naming the first bad field) and keep a copy.")
      .def_property_readonly(
          "options", [](const ValidatedOptions& v) { return v.get(); }, "A copy of the options.")
      .def_property_readonly("n_bins", &ValidatedOptions::n_bins);

  m.def("num_frames", &pyser::num_frames, py::arg("options"), py::arg("num_samples"),
        "Frames that offline extraction yields for a signal of num_samples samples.");
  m.def("extract_features", &extract, py::arg("options"), py::arg("waveform"),
        "(n,) float32/float64/int16 waveform -> new (n_frames, n_bins) float32 array.");
  m.def("extract_features_batch", &extract_batch, py::arg("options"), py::arg("waveforms"),
        py::arg("num_threads") = 0,
        "List of waveforms -> list of feature arrays, computed on num_threads threads "
        "(0 = all cores).");

  using Stream = pyser::StreamingFeatures;
  using ReleaseGil = py::call_guard<py::gil_scoped_release>;
  py::class_<Stream>(m, "StreamingFeatures",
                     "Frame-by-frame features of a stream. Safe to call from several threads: "
                     "calls are serialised by the stream's lock (taken without the GIL).")
      .def(py::init<const ValidatedOptions&>(), py::arg("options"))
      .def("accept_waveform", &accept, py::arg("chunk"),
           "Append a chunk; return a new (n_new, n_bins) float32 array of the frames it "
           "completes.")
      .def("frames_completed_by", &Stream::frames_completed_by, py::arg("n"), ReleaseGil())
      .def("reset", &Stream::reset, ReleaseGil())
      .def_property_readonly("num_frames", py::cpp_function(&Stream::num_frames, ReleaseGil()))
      .def_property_readonly("num_samples", py::cpp_function(&Stream::num_samples, ReleaseGil()))
      .def_property_readonly("n_bins", &Stream::n_bins);

  m.def("rfft", &rfft, py::arg("signal"),
        "Real FFT of a power-of-two-length signal (16..16384) -> complex64 (n/2+1,).");
  m.def(
      "mel_filterbank",
      [](const ValidatedOptions& options) {
        pyser::MelFilterbank bank(options.get());
        auto out = new_frames(bank.num_bands(), bank.num_bins());
        auto dense = bank.dense();
        std::copy(dense.begin(), dense.end(), out.mutable_data());
        return out;
      },
      py::arg("options"), "Dense (n_mels, n_fft/2+1) Mel weights.");
  m.def(
      "frame_window",
      [](const ValidatedOptions& options) {
        auto w = pyser::frame_window(options.get());
        FloatArray out(static_cast<py::ssize_t>(w.size()));
        std::copy(w.begin(), w.end(), out.mutable_data());
        return out;
      },
      py::arg("options"), "The analysis window centred in an n_fft frame.");
}
