"""Image files → one NeXus file: the functional core of ``nxgid convert``.

Everything is checked before anything is written (PONI, images, mask/dark/flat shapes,
sample file, output path and mode), then frames stream through the converter block by
block — constant memory however long the series — and each block is appended to the
output by :class:`nxgid.nexus.writer.NexusWriter`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from nxgid.conversion.corrections import Corrections
from nxgid.errors import NxgidError
from nxgid.names import MAP_RESULTS, PROFILE_RESULTS, RESULT_NAMES
from nxgid.nexus.writer import check_variable_name

#: Progress callback: (frames done, frames in total).
Progress = Callable[[int, int], None]


def result_name(text: str) -> str:
    """A result name, also accepting pygid's short forms (``gid_q`` → ``img_gid_q``)."""
    name = text.strip()
    if name in RESULT_NAMES:
        return name
    if f"img_{name}" in MAP_RESULTS:
        return f"img_{name}"
    raise NxgidError(f"result {text!r}: expected one of {', '.join(RESULT_NAMES)} "
                     "(img_ may be left out)")


def mask_from_image(image):
    """True where masked: any non-zero pixel of a mask image (for an NXdetector
    ``pixel_mask``, any of the low 16 bits, as NeXus defines). The result goes to the
    user-mask bit of the output's ``pixel_mask``."""
    import numpy as np

    image = np.asarray(image)
    if image.dtype == bool:
        return image
    if np.issubdtype(image.dtype, np.integer):
        return (image.astype(np.int64) & 0xFFFF) != 0
    return np.nan_to_num(image, nan=1.0) != 0


def read_mask_file(path: Path):
    """A mask image, or the ``pixel_mask`` of the NXdetector in a NeXus file (a
    configuration or scan file of an experiment) without its gap bit: the gaps are the
    detector's own mask, the other bits (dead, noisy, user…) become the user mask. A file
    whose detectors hold different masks is refused: each position needs its own."""
    import numpy as np

    from nxgid.images.series import read_image
    from nxgid.nexus.detector_frames import pixel_masks

    found = pixel_masks(Path(path))
    if not found:
        return read_image(path)
    first_name, first = next(iter(found.items()))
    for name, other in found.items():
        if other.shape != first.shape or not np.array_equal(other, first):
            raise NxgidError(f"{path}: /{first_name} and /{name} are different pixel masks: "
                             "expected one mask for every detector position")
    return np.asarray(first).astype(np.int64) & ~1  # NeXus pixel_mask bit 0: gap


@dataclass
class ConvertJob:
    """One ``nxgid convert`` run. Paths are as given; units in the names."""

    inputs: Sequence[str]
    output: Path
    #: The calibration: a PONI file, or (``poni`` None) a ``geometry`` given directly.
    poni: Path | None
    targets: Sequence  # result names or nxgid.conversion.TargetSpec
    #: One angle for all frames, or one per selected frame; None for transmission.
    incidence_deg: Sequence[float] | None = None
    transmission: bool = False
    tilt_deg: float = 0.0
    sample_orientation: int = 1
    dataset: str | None = None
    frames: str | None = None
    mask: Path | None = None
    dark: Path | None = None
    flat: Path | None = None
    use_detector_mask: bool = True
    corrections: Corrections = field(default_factory=Corrections)
    q_unit: str = "A^-1"
    method: str = "integrate"
    #: Which pixels are split among bins: auto (those wider than a bin), all, none.
    pixel_splitting: str = "auto"
    #: Most bins per frame a result may have (nxgid.conversion.autobins.MAX_BINS).
    max_bins: int = 4_000_000
    errors: bool = True
    mode: str = "create"
    compression: str = "gzip"
    metadata_file: Path | None = None
    title: str | None = None
    source_type: str = "Synchrotron X-ray Source"
    source_name: str | None = None
    instrument_name: str = "unknown"
    block_frames: int = 16
    cache_dir: Path | None = None
    #: Per-frame normalisation monitor: one value for all frames or one per frame.
    monitor: Sequence[float] | None = None
    #: Scan variables: name → (one value or one per frame, unit), e.g. temperature in K.
    variables: dict[str, tuple[Sequence[float], str]] = field(default_factory=dict)
    #: The detector geometry when there is no PONI file (a scan's calibration).
    geometry: object | None = None  # nxgid.geometry.DetectorGeometry
    #: A user mask as an array (True = masked), instead of or besides ``mask``.
    user_mask: object | None = None  # numpy bool array
    #: The reduction recipe (recorded with its hash in every entry's ``process``).
    recipe: dict | None = None
    #: Extra provenance for ``process/inputs`` (role → text).
    provenance: dict[str, str] = field(default_factory=dict)
    #: NXsample name when ``metadata_file`` names no sample (a scan's own sample).
    sample_name: str | None = None
    #: When the frames were measured (ISO 8601, e.g. from SPEC ``#D``): the entries'
    #: start time; without it, the raw files' modification times are used.
    start_time: str | None = None


def _measured_at(text: str | None) -> datetime | None:
    """An ISO 8601 start time (local time when it names no zone), None if absent or not
    parseable (a free-text date is then left to the raw files' times)."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.astimezone() if moment.tzinfo is None else moment


def _per_frame(values, n: int, what: str) -> list[float] | None:
    if values is None:
        return None
    values = [float(v) for v in values]
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise NxgidError(f"{what}: {len(values)} values for {n} frames; expected one, or "
                         "one per frame")
    return values


@dataclass
class ConvertSummary:
    output: Path
    frames: int
    files: int
    entries: dict[str, str]
    seconds: float
    bytes_written: int


def run_convert(job: ConvertJob, progress: Progress | None = None) -> ConvertSummary:
    """Convert the job's images into its output file; see the module docstring."""

    from nxgid.conversion import Converter, TargetSpec
    from nxgid.geometry import DetectorGeometry, SampleGeometry
    from nxgid.images.series import open_series, read_image
    from nxgid.nexus.writer import (
        EntryMetadata,
        FrameBlock,
        InstrumentInfo,
        NexusWriter,
        pixel_mask_bits,
    )
    from nxgid.safety.paths import refuse_overlap
    from nxgid.safety.resources import check_output_file

    start = time.perf_counter()
    # --- check everything first: nothing is written if any input is wrong ----------
    refuse_overlap([job.output], [*job.inputs, job.poni, job.mask, job.dark, job.flat,
                                  job.metadata_file])
    if job.mode == "append" and job.output.exists():
        check_output_file(job.output)
        from nxgid.safety.paths import check_regular_file

        check_regular_file(job.output, "a NeXus file to append to")
    else:
        check_output_file(job.output)
    if job.poni is not None:
        geometry = DetectorGeometry.from_poni(job.poni)
    elif job.geometry is not None:
        geometry = job.geometry
    else:
        raise NxgidError("convert: give a PONI file or a geometry")
    series = open_series(job.inputs, dataset=job.dataset, frames=job.frames)
    if series.shape != geometry.shape:
        raise NxgidError(f"{series.files[0]}: frames of shape {series.shape}, but the "
                         f"detector {'in ' + str(job.poni) if job.poni else ''} has shape "
                         f"{geometry.shape}")
    n = len(series)
    angles: list[float] | None = None
    if job.transmission:
        if job.incidence_deg:
            raise NxgidError("give --incidence or --transmission, not both")
        sample = SampleGeometry.transmission()
    else:
        if not job.incidence_deg:
            raise NxgidError("grazing incidence needs --incidence DEG (or --transmission)")
        angles = [float(a) for a in job.incidence_deg]
        if len(angles) not in (1, n):
            raise NxgidError(f"--incidence: {len(angles)} angles for {n} frames; expected "
                             "one, or one per frame")
        sample = SampleGeometry.grazing(angles[0], job.tilt_deg, job.sample_orientation)
    images = {role: (read_mask_file if role == "mask" else read_image)(path)
              for role, path in (("mask", job.mask), ("dark", job.dark), ("flat", job.flat))
              if path}
    for role, image in images.items():
        if image.shape != geometry.shape:
            raise NxgidError(f"{getattr(job, role)}: {role} of shape {image.shape}; the "
                             f"detector has {geometry.shape}")
    user_mask = images.get("mask")
    if user_mask is not None:
        user_mask = mask_from_image(user_mask)
    if job.user_mask is not None:
        import numpy as np

        given = np.asarray(job.user_mask, dtype=bool)
        if given.shape != geometry.shape:
            raise NxgidError(f"mask of shape {given.shape}; the detector has {geometry.shape}")
        user_mask = given if user_mask is None else (user_mask | given)
    sample_info = experiment_info = None
    if job.metadata_file is not None:
        from nxgid.nexus.metadata import load_metadata_yaml

        sample_info, experiment_info = load_metadata_yaml(job.metadata_file)
    if sample_info is None and job.sample_name:
        from nxgid.nexus.metadata import SampleInfo

        sample_info = SampleInfo(name=job.sample_name)
    measured = _measured_at(job.start_time)
    monitors = _per_frame(job.monitor, n, "--monitor")
    variables = {check_variable_name(name): (_per_frame(values, n, f"--var {name}"), unit)
                 for name, (values, unit) in job.variables.items()}
    specs = [t if isinstance(t, TargetSpec) else TargetSpec(result_name(t))
             for t in job.targets]
    for spec in specs:
        kind = (MAP_RESULTS.get(spec.name) or PROFILE_RESULTS.get(spec.name))[0]
        if kind != sample.mode:
            raise NxgidError(f"{spec.name} is a {kind} result: "
                             + ("drop --transmission" if kind == "gid" else
                                "use --transmission"))
    converter = Converter(
        geometry, sample, specs, q_unit=job.q_unit, corrections=job.corrections,
        mask=user_mask, use_detector_mask=job.use_detector_mask,
        dark=images.get("dark"), flat=images.get("flat"),
        incidence_angles_deg=sorted(set(angles)) if angles else None, errors=job.errors,
        pixel_splitting=job.pixel_splitting, method=job.method, max_bins=job.max_bins,
        cache_dir=job.cache_dir)
    converter.check_memory(min(job.block_frames, n))
    metadata = EntryMetadata(
        InstrumentInfo(geometry,
                       pixel_mask_bits(geometry.detector_mask if job.use_detector_mask
                                       else None, user_mask, geometry.shape),
                       source_type=job.source_type, source_name=job.source_name,
                       name=job.instrument_name),
        title=job.title, sample=sample_info, experiment=experiment_info,
        inputs={**{role: str(path) for role, path in
                   (("poni", job.poni), ("mask", job.mask), ("dark", job.dark),
                    ("flat", job.flat), ("metadata", job.metadata_file)) if path},
                **job.provenance},
        **({"recipe": job.recipe} if job.recipe is not None else {}))
    # --- convert and write -----------------------------------------------------------
    mtimes: dict[Path, datetime] = {}

    def acquired(path: Path) -> datetime:
        if measured is not None:
            return measured
        if path not in mtimes:
            mtimes[path] = datetime.fromtimestamp(path.stat().st_mtime).astimezone()
        return mtimes[path]

    frame_angles = None if angles is None else \
        (angles * n if len(angles) == 1 else angles)
    origins = series.origins
    done = 0
    with NexusWriter(job.output, metadata, mode=job.mode,  # type: ignore[arg-type]
                     compression=job.compression) as writer:
        blocks = (stack for stack, _ in series.iter_blocks(job.block_frames))
        for results in converter.convert_blocks(blocks, block_frames=job.block_frames,
                                                incidence_deg=frame_angles,
                                                monitor=monitors, reuse_outputs=True):
            count = next(iter(results.values())).frames
            block = origins[done:done + count]
            rows = slice(done, done + count)
            writer.write(results, FrameBlock(
                files=[str(o.path) for o in block], numbers=[o.index for o in block],
                times=[acquired(o.path) for o in block],
                variables={name: (values[rows], unit)
                           for name, (values, unit) in variables.items()}))
            done += count
            if progress is not None:
                progress(done, n)
        entries = dict(writer.entries_written)
    return ConvertSummary(output=job.output, frames=done, files=len(series.files),
                          entries=entries, seconds=time.perf_counter() - start,
                          bytes_written=job.output.stat().st_size)
