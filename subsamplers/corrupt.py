"""Seeded corruptions of each clip's video and audio, so models learn to ignore noise (media stage).

Everything is drawn from ``random.Random(f"{seed}:{clip_key}:{name}")``, one stream per corruption:
the same seed and clip key always give the same corruption, and changing one corruption's settings
does not reshuffle the others. Each corruption happens with its probability ``p_*``; its parameters
are drawn uniformly from their ranges and written to the clip's json under ``corrupt`` (with the seed
and key), so a corrupted clip can be paired with its clean version and regenerated.

All of it is ffmpeg filters in the one fused pass, applied after cutting and resampling (so put this
step after ``clip`` and the ``resample_*`` steps):

- video: a stall (``select`` drops a run of frames, ``fps`` holds the last one: the frame count stays),
  brightness/contrast (``eq``), blur (``boxblur``), an occluding black box (``drawbox``), temporal noise
  (``noise`` with its own seed), and low-quality compression (a high libx264 ``crf`` for that clip);
- audio, in the clip's output rate and channels: background noise at a target SNR, a gain change
  (``volume``), dropouts (silence over drawn intervals, sample-exact with ``aeval``). The noise
  (white/pink/brown from a seeded generator, or a random stretch of a background recording from
  ``noise_files``) is made here at unit RMS and mixed under the clip at ``gain = speech level - SNR``
  dB. The speech level is the RMS of the clip's audio as written, measured by decoding the source span
  with PyAV (the same resampler as ffmpeg's), so the SNR of the written clip is the one drawn. Gain and
  dropouts apply after the mix.

``keep_clean: true`` keeps the clip as cut in ``KEY.mp4`` (``KEY.flac``...) and writes the corrupted
copy next to it as ``KEY.corrupt.mp4`` in the same pass; otherwise ``KEY.mp4`` is the corrupted clip.
"""

from __future__ import annotations

import glob
import io
import math
import random
from dataclasses import dataclass, fields
from functools import cache, lru_cache
from typing import Any

import av
import numpy as np

from v2d_vox.errors import SubsampleError
from v2d_vox.media import open_media
from v2d_vox.plan import MediaPlan, Mix, channel_layout
from v2d_vox.sample import Sample
from v2d_vox.subsampler import Subsampler, register

from .clip import source_duration

Range = tuple[float, float]
COLORS = ("white", "pink", "brown")
SILENCE_DBFS = -100.0  # level assumed for a silent clip, so the noise stays finite


@register("corrupt")
@dataclass
class Corrupt(Subsampler):
    stage = "media"
    seed: int = 0
    keep_clean: bool = False  # clean clip in KEY.<ext>, corrupted copy in KEY.corrupt.<ext>
    # video: probability per clip, then the (uniform) range of each parameter
    p_drop_frames: float = 0.2
    drop_frames: Range = (2, 8)  # a run of frames replaced by the one before it
    p_color: float = 0.3
    brightness: Range = (-0.2, 0.2)  # eq: added to luma, -1..1
    contrast: Range = (0.6, 1.4)
    p_blur: float = 0.3
    blur_radius: Range = (1, 4)  # pixels; two box passes: a Gaussian of sigma sqrt(2r(r+1)/3), 1.2-3.7 px
    p_occlusion: float = 0.2
    occlusion_size: Range = (0.15, 0.4)  # box width and height, fractions of the frame's
    p_noise: float = 0.3
    noise_strength: Range = (5, 25)  # ffmpeg noise alls, 0..100
    p_compress: float = 0.2
    crf: Range = (36, 48)  # libx264 crf of the corrupted clip
    # audio
    p_audio_noise: float = 0.5
    snr_db: Range = (0.0, 20.0)
    noise_colors: tuple[str, ...] = ("white", "pink")  # one drawn per clip
    noise_files: str | None = None  # glob of background recordings, used instead of noise_colors
    p_gain: float = 0.3
    gain_db: Range = (-12.0, 6.0)
    p_dropout: float = 0.2
    dropouts: Range = (1, 3)  # intervals per clip
    dropout_seconds: Range = (0.05, 0.25)

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):  # YAML gives lists
                value = tuple(value)
                setattr(self, f.name, value)
            if f.name.startswith("p_") and not 0 <= value <= 1:
                raise ValueError(f"{f.name} must be in [0, 1], got {value}")
            if f.type == "Range" and not (len(value) == 2 and value[0] <= value[1]):
                raise ValueError(f"{f.name} must be [low, high] with low <= high, got {list(value)}")
        if not self.noise_colors or set(self.noise_colors) - set(COLORS):
            raise ValueError(f"noise_colors must be among {COLORS}, got {list(self.noise_colors)}")
        if self.noise_files and not background_files(self.noise_files):
            raise ValueError(f"noise_files {self.noise_files!r} matches no file")

    def _draw(self, key: str, name: str, p: float) -> random.Random | None:
        """The clip's generator for corruption `name` if it happens (probability `p`), else None."""
        rng = random.Random(f"{self.seed}:{key}:{name}")
        return rng if rng.random() < p else None

    def plan(self, plan: MediaPlan, sample: Sample) -> None:
        info = sample.meta["probe"]
        video, audio = plan.streams(info)
        noisy: dict[int, dict[str, Any]] = {}
        spans = {}
        for clip in plan.clips(sample.key):
            end = source_duration(info) if clip.end is None else clip.end
            spans[clip.index] = (clip.start, end)
            edit = plan.edit(clip.index)
            record: dict[str, Any] = {"seed": self.seed, "key": clip.key, "keep_clean": self.keep_clean}
            if video:
                filters, record["video"], crf = self._video(clip.key, end - clip.start, plan.output_fps(info))
                edit.video_filters += filters
                edit.crf = edit.crf if crf is None else crf
            if audio:
                filters, record["audio"] = self._audio(clip.key, end - clip.start)
                edit.audio_filters += filters
                if "noise" in record["audio"]:
                    noisy[clip.index] = record["audio"]["noise"]
            edit.meta["corrupt"] = record
        if noisy:
            self._mix_noise(plan, sample, spans, noisy, *plan.output_audio(info))
        if self.keep_clean:
            plan.variant = "corrupt"

    def _video(self, key: str, seconds: float, fps: float) -> tuple[list[str], dict[str, Any], int | None]:
        """Filters, drawn parameters, and the crf of a low-quality encode (None: none drawn)."""
        filters, params, crf = [], {}, None
        frames = round(seconds * fps)
        if (r := self._draw(key, "drop_frames", self.p_drop_frames)) and frames > 2:
            run = min(r.randint(*map(int, self.drop_frames)), frames - 2)
            first = r.randint(1, frames - 1 - run)  # never the first or last frame: the clip keeps its length
            filters += [f"select=not(between(n,{first},{first + run - 1}))", f"fps={fps}"]
            params["drop_frames"] = {"first": first, "count": run}
        if r := self._draw(key, "color", self.p_color):
            b, c = round(r.uniform(*self.brightness), 3), round(r.uniform(*self.contrast), 3)
            filters.append(f"eq=brightness={b}:contrast={c}")
            params["color"] = {"brightness": b, "contrast": c}
        if r := self._draw(key, "blur", self.p_blur):
            radius = r.randint(*map(int, self.blur_radius))
            filters.append(f"boxblur=luma_radius={radius}:luma_power=2")  # ~Gaussian, 3x faster than gblur
            params["blur"] = {"radius": radius}
        if r := self._draw(key, "occlusion", self.p_occlusion):
            w, h = (round(r.uniform(*self.occlusion_size), 3) for _ in range(2))
            x, y = round(r.uniform(0, 1 - w), 3), round(r.uniform(0, 1 - h), 3)
            filters.append(f"drawbox=x=iw*{x}:y=ih*{y}:w=iw*{w}:h=ih*{h}:color=black:t=fill")
            params["occlusion"] = {"x": x, "y": y, "w": w, "h": h}
        if r := self._draw(key, "noise", self.p_noise):
            strength, seed = r.randint(*map(int, self.noise_strength)), r.randrange(2**31)
            filters.append(f"noise=alls={strength}:allf=t:all_seed={seed}")
            params["noise"] = {"strength": strength, "seed": seed}
        if r := self._draw(key, "compress", self.p_compress):
            crf = r.randint(*map(int, self.crf))
            params["compress"] = {"crf": crf}
        return filters, params, crf

    def _audio(self, key: str, seconds: float) -> tuple[list[str], dict[str, Any]]:
        filters, params = [], {}
        if r := self._draw(key, "audio_noise", self.p_audio_noise):
            noise: dict[str, Any] = {"snr_db": round(r.uniform(*self.snr_db), 2), "seed": r.randrange(2**31)}
            if self.noise_files:
                noise["file"] = r.choice(background_files(self.noise_files))
            else:
                noise["color"] = r.choice(self.noise_colors)
            params["noise"] = noise
        if r := self._draw(key, "gain", self.p_gain):
            params["gain"] = {"db": round(r.uniform(*self.gain_db), 2)}
            filters.append(f"volume={params['gain']['db']}dB")
        if r := self._draw(key, "dropout", self.p_dropout):
            spans = []
            for _ in range(r.randint(*map(int, self.dropouts))):
                length = min(r.uniform(*self.dropout_seconds), seconds)
                start = r.uniform(0, seconds - length)
                spans.append([round(start, 3), round(start + length, 3)])
            # per sample (aeval's t), not per frame as a filter's enable= would be
            filters.append(f"aeval=exprs=val(ch)*not({'+'.join(f'between(t,{a},{b})' for a, b in spans)}):c=same")
            params["dropout"] = {"spans": spans}
        return filters, params

    def _mix_noise(self, plan: MediaPlan, sample: Sample, spans: dict[int, tuple[float, float]],
                   noisy: dict[int, dict[str, Any]], rate: int, channels: int) -> None:
        """One unit-RMS noise input per noisy clip, mixed at the gain that gives the drawn SNR."""
        window = plan.layout.window() or (0.0, None)
        levels = span_levels(sample.media, [spans[i] for i in noisy], rate, channels, window)
        for (i, noise), level in zip(noisy.items(), levels):
            start, end = spans[i]
            n = max(1, round((end - start) * rate))
            rng = np.random.default_rng(noise["seed"])
            if "file" in noise:
                pcm, noise["offset"] = background_stretch(noise["file"], rng, n, rate, channels)
            else:
                pcm = colored_noise(rng, channels, n, noise["color"])
            noise["speech_dbfs"] = round(max(20 * math.log10(max(level, 1e-12)), SILENCE_DBFS), 4)
            noise["gain_db"] = round(noise["speech_dbfs"] - noise["snr_db"], 4)
            plan.edit(i).mix = Mix(wav_bytes(pcm / np.sqrt(np.mean(pcm**2) or 1.0), rate), noise["gain_db"])


def colored_noise(rng: np.random.Generator, channels: int, n: int, color: str) -> np.ndarray:
    """(channels, n) gaussian noise, white or shaped in frequency: pink (power 1/f), brown (1/f^2)."""
    x = rng.standard_normal((channels, n))
    if color == "white":
        return x
    spectrum = np.fft.rfft(x, axis=-1)
    f = np.arange(spectrum.shape[-1], dtype=np.float64)
    f[0] = 1.0
    spectrum /= f ** (0.5 if color == "pink" else 1.0)
    return np.fft.irfft(spectrum, n, axis=-1)


@cache
def background_files(pattern: str) -> list[str]:
    return sorted(glob.glob(pattern, recursive=True))


@lru_cache(maxsize=16)
def _background(path: str, rate: int, channels: int) -> np.ndarray:
    with open(path, "rb") as f:
        return decode_pcm(f.read(), rate, channels)[0]


def background_stretch(path: str, rng: np.random.Generator, n: int, rate: int,
                       channels: int) -> tuple[np.ndarray, float]:
    """`n` samples of a background recording from a random offset (looped if shorter), and the offset."""
    pcm = _background(path, rate, channels)
    if pcm.shape[1] == 0:
        raise SubsampleError(f"corrupt: background recording {path.rsplit('/', 1)[-1]} holds no audio")
    offset = int(rng.integers(0, max(1, pcm.shape[1] - n)))
    return np.resize(np.roll(pcm, -offset, axis=1), (channels, n)), round(offset / rate, 4)


def decode_pcm(data: bytes, rate: int, channels: int, start: float = 0.0,
               end: float | None = None) -> tuple[np.ndarray, float]:
    """(channels, n) float32 of the first audio stream from about `start` to `end` (seconds, source time),
    resampled like ffmpeg writes it, and the time of its first sample."""
    try:
        with open_media(data) as c:
            origin = (c.start_time or 0) / av.time_base
            if start > 0:
                c.seek(int((origin + start) * av.time_base))
            resampler = av.AudioResampler(format="fltp", layout=channel_layout(channels), rate=rate)
            first, chunks = None, []
            for frame in c.decode(c.streams.audio[0]):
                t = (frame.time if frame.time is not None else origin) - origin
                if end is not None and t > end:
                    break
                first = t if first is None else first
                chunks += [f.to_ndarray() for f in resampler.resample(frame)]
            chunks += [f.to_ndarray() for f in resampler.resample(None)]
    except (av.error.FFmpegError, IndexError) as e:
        raise SubsampleError(f"corrupt: cannot decode audio: {type(e).__name__}") from None
    pcm = np.concatenate(chunks, axis=1) if chunks else np.zeros((channels, 0), np.float32)
    return pcm, first or 0.0


def span_levels(data: bytes, spans: list[tuple[float, float]], rate: int, channels: int,
                window: tuple[float, float | None]) -> list[float]:
    """RMS of the source audio over each span (silence where it has none), in the output's rate and channels,
    decoded over the source ``window`` the ffmpeg pass reads."""
    pcm, t0 = decode_pcm(data, rate, channels, *window)
    levels = []
    for start, end in spans:
        a, n = round((start - t0) * rate), max(1, round((end - start) * rate))
        segment = pcm[:, max(a, 0) : max(a + n, 0)].astype(np.float64)
        levels.append(math.sqrt(float(np.sum(segment**2)) / (n * channels)))
    return levels


def wav_bytes(pcm: np.ndarray, rate: int) -> bytes:
    """(channels, n) samples as a float WAV: no quantisation, so the mixed level is the one computed."""
    buf = io.BytesIO()
    layout = channel_layout(pcm.shape[0])
    with av.open(buf, "w", format="wav") as c:
        stream = c.add_stream("pcm_f32le", rate=rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm.T, dtype=np.float32).reshape(1, -1),
                                           format="flt", layout=layout)
        frame.sample_rate = rate
        c.mux(stream.encode(frame))
        c.mux(stream.encode(None))
    return buf.getvalue()
