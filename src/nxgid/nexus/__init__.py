"""NeXus files: the nxgid format (application definition NXgid), its writer and reader,
sample and experiment metadata, and validators. See docs/nexus-format.md.

    from nxgid.nexus import NexusFile
    NexusFile("film.nxs").load("img_gid_q")
"""

from nxgid.nexus.reader import EntryInfo, NexusFile, StoredResult
from nxgid.nexus.writer import EntryMetadata, FrameBlock, InstrumentInfo, NexusWriter

__all__ = ["EntryInfo", "EntryMetadata", "FrameBlock", "InstrumentInfo", "NexusFile",
           "NexusWriter", "StoredResult"]
