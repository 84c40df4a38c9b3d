"""The ``images`` beamline: one folder of image files per scan, metadata from flags.

Raw tree: ``<raw>/<sample>/<label>/<scan>/`` holding image files (any fabio format),
or ``<scan>/fN/`` subfolders for several entries. Nothing else is read: logs are empty
unless the import gives values (``nxgid import --var``).
"""

from __future__ import annotations

from pathlib import Path

from nxgid.beamlines.base import BeamLine, RawScan, ScanLogs

#: Image file suffixes this beamline looks for.
SUFFIXES = (".cbf", ".tif", ".tiff", ".edf", ".h5", ".img", ".mccd")


def _images(folder: Path) -> list[Path]:
    from nxgid.images.series import _natural_key

    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES
                   and not p.name.startswith(".")), key=_natural_key)


class ImageFolderBeamLine(BeamLine):
    name = "images"

    def raw_scans(self, sample: str, label: str) -> list[RawScan]:
        folder = self.raw_directory / sample / label
        if not folder.is_dir():
            return []
        scans = []
        for scan_dir in sorted(p for p in folder.iterdir() if p.is_dir()
                               and not p.name.startswith(".")):
            entries = {sub.name: _images(sub) for sub in sorted(scan_dir.iterdir())
                       if sub.is_dir() and sub.name[:1] == "f" and sub.name[1:].isdigit()}
            if not entries:
                entries = {"f1": _images(scan_dir)}
            empty = [name for name, files in entries.items() if not files]
            scans.append(RawScan(scan=scan_dir.name, label=label, entries=entries,
                                 source={"folder": str(scan_dir)},
                                 skipped=f"no image files in {scan_dir}/{empty[0]}"
                                 if empty and empty[0] != "f1" else
                                 (f"no image files in {scan_dir}" if empty else None)))
        return scans

    def logs(self, scan: RawScan) -> ScanLogs:
        return ScanLogs()
