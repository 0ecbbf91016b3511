"""Where results come from: timestamps and the versions of the packages that shape them, written into every
store, archive, run folder and report the package makes."""

from __future__ import annotations

import datetime as _dt
import platform
from dataclasses import dataclass, field
from importlib import metadata

from . import manifest


def utc_now() -> str:
    """The current time, UTC, ISO 8601 to the second (``2026-12-02T06:27:06+00:00``)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def package_versions(*names: str) -> dict[str, str]:
    """``{"python": "3.11.7", name: version, ...}`` for the installed distributions among ``names``."""
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


@dataclass(frozen=True)
class Origin:
    """Where the frames of a store came from, in words no reader can miss.

    ``published``: the archive with the published md5 (VASP 5.4.1, PBE). ``generated``: an archive carrying a
    PROVENANCE.json (written by ``tm23data.generation``): its record says how it was made. ``unknown``: another
    md5 and no record - the data may be anything, so it is never described as TM23's DFT labels.
    """

    kind: str  # "published" | "generated" | "unknown"
    archive_md5: str
    record: dict = field(default_factory=dict)
    element: str | None = None  # the element whose calculator ``method`` names, where the record has several

    @classmethod
    def of(cls, archive_md5: str, provenance, element: str | None = None) -> Origin:
        """From a store's ``archive_md5`` and ``provenance`` attribute (a PROVENANCE.json dict, or text). The md5
        decides first: the archive with the published md5 is the published archive, whatever else it holds."""
        if archive_md5 == manifest.ARCHIVE_MD5:
            return cls("published", archive_md5, {}, element)
        if isinstance(provenance, dict):
            return cls("generated", archive_md5, provenance, element)
        return cls("unknown", archive_md5, {}, element)

    @property
    def published(self) -> bool:
        return self.kind == "published"

    @property
    def method(self) -> str:
        """How the labels were computed, in a few words (``VASP 5.4.1, PBE``, ``EMT``, ``unknown``)."""
        if self.published:
            return "VASP 5.4.1, PBE"
        calc = self.record.get("calculator")
        if isinstance(calc, dict):
            calc = calc.get(self.element) or "+".join(sorted(set(map(str, calc.values()))))
        return str(calc) if calc else "unknown"

    def summary(self) -> str:
        """One line: the published archive, or a warning that starts with NOT."""
        if self.published:
            return (f"published TM23 archive (Materials Cloud DOI {manifest.DOI}; VASP 5.4.1, PBE), "
                    f"md5 {self.archive_md5}")  # fmt: skip
        if self.kind == "generated":
            what = str(self.record.get("what", "generated TM23-format archive")).rstrip(". ")
            made = self.record.get("created_utc")
            return (f"NOT the published TM23 data: {what} (labels: {self.method}"
                    f"{'; made ' + made if made else ''}; archive md5 {self.archive_md5})")  # fmt: skip
        return (f"NOT verified as the published TM23 data: archive md5 {self.archive_md5} is not the published "
                f"archive's ({manifest.ARCHIVE_MD5}) and it carries no provenance record")  # fmt: skip

    def short(self) -> str:
        """A few words for plot titles and table cells: ``published TM23 (VASP/PBE)`` or ``NOT TM23 DFT: EMT``."""
        if self.published:
            return "published TM23 (VASP/PBE)"
        return f"NOT TM23 DFT data: {self.method}" if self.kind == "generated" else "NOT verified TM23 data"

    def to_json(self) -> dict:
        return {"kind": self.kind, "published": self.published, "summary": self.summary(),
                "archive_md5": self.archive_md5, "method": self.method}  # fmt: skip


def combined(origins) -> Origin:
    """The one origin of several stores (a selection of several elements), or the first non-published one:
    a mix must never read as published."""
    origins = list(origins)
    return next((o for o in origins if not o.published), origins[0])


def stamp_origin(fig, origin: Origin | None) -> None:
    """Write where the data came from under a figure: grey for the published archive, red and bold (NOT ...)
    for anything else, so a figure of generated data is never taken for TM23's DFT."""
    if origin is not None:
        stamp(fig, origin.summary(), published=origin.published)


def stamp(fig, text: str, *, published: bool) -> None:
    """``text`` along the bottom of a matplotlib figure, red and bold unless ``published``."""
    if fig.get_layout_engine() is None:  # make room; a constrained layout leaves its own margin
        fig.subplots_adjust(bottom=max(fig.subplotpars.bottom, 0.2))
    fig.text(0.01, 0.005, text, fontsize=6 if published else 7, wrap=True, color="0.4" if published else "red",
             weight="normal" if published else "bold")  # fmt: skip
