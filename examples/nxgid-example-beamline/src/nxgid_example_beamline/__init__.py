"""An example nxgid beamline plugin, living outside nxgid as a real one would.

Raw tree: ``<raw>/<sample>/<label>/<scan>/`` holds the scan's images (``*.tif`` or
``*.cbf``) and ``log.csv``, one row per frame with a header, e.g.::

    frame,monitor,seconds,temperature_K,incidence_deg
    1,100512,1.0,300.1,0.15

The plugin lists the scans and turns the CSV into nxgid's typed logs; nxgid does the
rest (scan files, stacking, writing the logs).
"""

from __future__ import annotations

import csv
from pathlib import Path

from nxgid.beamlines.base import BeamLine, RawScan, ScanLogs

__all__ = ["CsvLogBeamLine"]


class CsvLogBeamLine(BeamLine):
    name = "example"
    source_name = "Example Light Source"

    def raw_scans(self, sample: str, label: str) -> list[RawScan]:
        folder = self.raw_directory / sample / label
        scans = []
        for scan_dir in sorted(p for p in folder.glob("*") if p.is_dir()):
            images = sorted([*scan_dir.glob("*.tif"), *scan_dir.glob("*.cbf")])
            log = scan_dir / "log.csv"
            reason = None
            if not images:
                reason = f"no images in {scan_dir}"
            elif not log.is_file():
                reason = f"no log.csv in {scan_dir}"
            scans.append(RawScan(scan=scan_dir.name, label=label, entries={"f1": images},
                                 source={"log": str(log)}, skipped=reason))
        return scans

    def logs(self, scan: RawScan) -> ScanLogs:
        with Path(scan.source["log"]).open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        column = {key: [float(row[key]) for row in rows] for key in rows[0]} if rows else {}
        logs = ScanLogs(monitor=column.get("monitor"),
                        counting_time_s=column.get("seconds"),
                        temperature_K=column.get("temperature_K"),
                        table=column)
        if "incidence_deg" in column:
            logs.angles_deg["incidence_angle"] = column["incidence_deg"]
        images = len(scan.entries["f1"])
        if rows and len(rows) != images:
            logs.warnings.append(f"{scan.scan}: {images} images, {len(rows)} log rows")
        return logs
