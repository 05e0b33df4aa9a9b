"""Sound files that lie: truncated data, absurd header rates, NaN samples. Every reader of
the runtime (read_audio, load_audio, iter_file_chunks, and so pyser predict/stream) refuses
them with an error naming the file, instead of decoding part of the audio without a word."""

import struct

import numpy as np
import pytest
import soundfile as sf

from pyser.audio import (
    AudioDecodeError,
    iter_file_chunks,
    load_audio,
    read_audio,
    wav_header_frames,
)
from pyser.cli import main

RATE = 16000


@pytest.fixture
def tone():
    t = np.arange(RATE) / RATE
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def write_wav(path, samples, subtype="PCM_16"):
    sf.write(str(path), samples, RATE, subtype=subtype)
    return path


def truncate(path, keep_fraction):
    data = path.read_bytes()
    path.write_bytes(data[: 44 + int((len(data) - 44) * keep_fraction)])
    return path


def set_header_rate(path, rate):
    data = bytearray(path.read_bytes())
    fmt = data.index(b"fmt ")
    struct.pack_into("<I", data, fmt + 12, rate)  # sample rate field of the fmt chunk
    path.write_bytes(bytes(data))
    return path


def read_all_chunks(path):
    _, blocks = iter_file_chunks(path)
    return np.concatenate(list(blocks))


def test_whole_files_read_as_before(tmp_path, tone):
    path = write_wav(tmp_path / "ok.wav", tone)
    data, rate = read_audio(path)
    assert rate == RATE and data.shape == (RATE, 1)
    assert wav_header_frames(path) == RATE
    np.testing.assert_allclose(read_all_chunks(path)[:, 0], data[:, 0])
    np.testing.assert_allclose(load_audio(path), data[:, 0])


@pytest.mark.parametrize("reader", [read_audio, load_audio, read_all_chunks])
def test_a_wav_cut_to_half_its_data_is_refused(tmp_path, tone, reader):
    path = truncate(write_wav(tmp_path / "cut.wav", tone), 0.5)
    assert sf.info(str(path)).frames < RATE  # libsndfile alone would not notice
    with pytest.raises(AudioDecodeError, match=r"cut.wav: truncated .* says 16000 frames"):
        reader(path)


@pytest.mark.parametrize("rate", [1, 999, 10**6])
def test_an_absurd_header_rate_is_refused_before_decoding(tmp_path, tone, rate):
    path = set_header_rate(write_wav(tmp_path / "rate.wav", tone), rate)
    for reader in (read_audio, iter_file_chunks):
        with pytest.raises(AudioDecodeError, match=rf"rate.wav: sample rate {rate} Hz"):
            reader(path)


def test_nan_samples_are_refused(tmp_path, tone):
    tone[1234] = np.nan
    path = write_wav(tmp_path / "nan.wav", tone, subtype="FLOAT")
    with pytest.raises(AudioDecodeError, match="nan.wav: non-finite sample .* at frame 1234"):
        read_audio(path)


def test_cli_names_the_bad_file(tmp_path, tone, capsys):
    path = truncate(write_wav(tmp_path / "cut.wav", tone), 0.5)
    assert main(["features", str(path)]) == 2
    assert "cut.wav: truncated" in capsys.readouterr().err
