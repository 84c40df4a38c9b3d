"""The ``hdf5`` beamline: detector master files already on disk (e.g. Eiger
``*_master.h5`` with bitshuffle data), linked into the scans, never copied.

Raw tree: ``<raw>/<sample>/<label>/<scan>_master.h5`` (or ``<scan>.h5``); a scan's
entries are its master files in order (``<scan>_1_master.h5``, … → f1, f2, …).
"""

from __future__ import annotations

import re

from nxgid.beamlines.base import BeamLine, RawScan, ScanLogs

_MASTER = re.compile(r"(?P<scan>.+?)(?:_(?P<index>\d+))?(?:_master)?\.(?:h5|hdf5|nxs)$")


class HDF5BeamLine(BeamLine):
    name = "hdf5"

    def raw_scans(self, sample: str, label: str) -> list[RawScan]:
        folder = self.raw_directory / sample / label
        if not folder.is_dir():
            return []
        grouped: dict[str, dict[int, object]] = {}
        for path in sorted(folder.iterdir()):
            match = _MASTER.fullmatch(path.name)
            if not path.is_file() or match is None or re.search(r"_data_\d+\.h5$", path.name):
                continue
            index = int(match.group("index") or 1)
            grouped.setdefault(match.group("scan"), {})[index] = path
        return [RawScan(scan=scan, label=label, link=True,
                        entries={f"f{n}": [files[i]] for n, i in
                                 enumerate(sorted(files), start=1)},
                        source={"folder": str(folder)})
                for scan, files in sorted(grouped.items())]

    def logs(self, scan: RawScan) -> ScanLogs:
        return ScanLogs()
