"""Live mode (``nxgid watch``): import scans and reduce frames while they are measured.

One *pass* (:meth:`LiveReduction.run_pass`) does, for every selected ``sample/label``:

1. lists the raw scans with the beamline plugin and keeps, per entry, the image files
   that are *ready*: size and modification time unchanged for ``settle`` seconds (as
   seen by this process, so clock skew on network file systems does not matter), and
   every frame fully readable (decoded once, e.g. a CBF's checksum and size). Files are
   taken in order up to the first that is not ready, so a stack never skips a frame;
2. imports new scans from the configuration (:func:`nxgid.beamlines.importer.
   import_scans`, with only the ready files) and appends the newly ready files of
   imported scans to their raw stacks ``<scan>/fN.h5`` (:func:`nxgid.experiment.stack.
   append_images`: whole frames only, crash-safe), then re-reads the beamline logs of
   those scans so that they cover every stacked frame (a beamline that logs fewer
   points than there are frames is an error for that scan only, retried every pass);
3. brings the workflow database in line (:func:`nxgid.workflow.sync.sync`);
4. converts, for every entry whose raw stack holds more frames than its reduced file
   ``<scan>/fN_reduced.nxs`` has committed, only the new frames under the scan's recipe
   (:func:`nxgid.workflow.tasks.convert_job`), appending them to the reduced file
   (NeXus writer mode ``append``; ``create`` the first time), and records ``link`` and
   ``convert`` done (:func:`nxgid.workflow.queue.record_done`) once the file holds every
   frame, so ``nxgid reduce`` and ``nxgid status`` see the entry up to date.

The raw tree is only ever read. Every action is logged to the ``nxgid`` logger with the
scan and entry (the experiment log, ``tasks/nxlogger.log``); a problem with one scan is
logged once (until it changes) and never stops the others.

:func:`watch` runs passes: one at the start, then whenever the file-system observer
(:mod:`watchdog`; inotify, or polling with ``poll`` or when the native observer cannot
start) reports a change in the raw tree (debounced), when a file waiting to settle may
have settled, and every ``interval`` seconds regardless. ``stop`` (a
:class:`threading.Event`) or Ctrl-C ends it; the writers roll an interrupted block
back, so every file stays readable with whole frames, and the database only ever
records what is on disk.

Limits: HDF5 detector files (``hdf5`` beamline, e.g. Eiger masters) are imported once
the master file is stable, by link; frames added inside HDF5 files later are not picked
up (re-import with ``nxgid import --overwrite``). An image file is stacked whole once
ready: a multi-frame file that grows after that is reported, not re-read. Summed scans,
and entries whose ``convert`` task is queued or running for the workers, are left to
``nxgid reduce``.

Modules: :mod:`~nxgid.workflow.live.loop` (:func:`watch`, the loop of passes),
:mod:`~nxgid.workflow.live.reduction` (:class:`LiveReduction`, one pass),
:mod:`~nxgid.workflow.live.watcher` (:class:`RawWatcher`, the file-system observer),
:mod:`~nxgid.workflow.live.events` (the reports: :class:`LiveEvent`, :class:`PassReport`,
:class:`LiveSummary`), :mod:`~nxgid.workflow.live.raw_files` (whether raw image files read
completely), :mod:`~nxgid.workflow.live.importing` (a raw scan imported as far as it is
ready), :mod:`~nxgid.workflow.live.files` (frames committed in nxgid's own stacks and
reduced files, HDF5 locks) and :mod:`~nxgid.workflow.live.interrupts` (Ctrl-C held back
during steps that must not stop half-way) and :mod:`~nxgid.workflow.live.readiness`
(whether a raw file has settled and reads to the end).
"""

from nxgid.workflow.live.events import LiveEvent, LiveSummary, PassReport
from nxgid.workflow.live.files import _reduced_frames
from nxgid.workflow.live.loop import parse_selections, watch
from nxgid.workflow.live.readiness import UNREADABLE_WARNING_S
from nxgid.workflow.live.reduction import CHUNK_FRAMES, LiveReduction
from nxgid.workflow.live.watcher import CHANGE_EVENTS, RawWatcher

__all__ = [
    "CHANGE_EVENTS",
    "CHUNK_FRAMES",
    "UNREADABLE_WARNING_S",
    "LiveEvent",
    "LiveReduction",
    "LiveSummary",
    "PassReport",
    "RawWatcher",
    "_reduced_frames",
    "parse_selections",
    "watch",
]
