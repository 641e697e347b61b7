"""The megakernel capture format: a VRRL ring log whose records are the slots a megakernel
consumed, stored by the ``megakernel`` kind as ``.mkvrrl`` (not ``.vrrl``: kinds are found
by file suffix, and the ring kind owns that one).

The bytes are the VRRL format's (:mod:`pytest_replay.formats.vrrl`); what a capture adds
is how a slot maps onto a record (see :data:`CAPTURE_FRAMING`'s notes) and the metadata a
replay needs beside the records, stored in the manifest entry as
``{"kind": CAPTURE_KIND, "version": CAPTURE_VERSION, "slots", "mode", "backend"}``
(:class:`pytest_replay.megakernel.capture.CaptureInfo` checks it).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Final

from pytest_replay.formats.base import Framing
from pytest_replay.formats.vrrl import VRRL_FRAMING, VrrlFormat

__all__ = [
    "CAPTURE",
    "CAPTURE_EXTENSION",
    "CAPTURE_FRAMING",
    "CAPTURE_KIND",
    "CAPTURE_VERSION",
    "CaptureFormat",
]

#: The ``kind`` and ``version`` a capture's metadata carries.
CAPTURE_KIND: Final = "megakernel"
CAPTURE_VERSION: Final = 1
CAPTURE_EXTENSION: Final = ".mkvrrl"

CAPTURE_FRAMING: Final = dataclasses.replace(
    VRRL_FRAMING,
    notes=(
        *VRRL_FRAMING.notes,
        "one record per consumed slot, in publish order: slot_idx, tenant_id, opcode and "
        "argument words 0..3 as published (words 4..12 must be zero to be captured)",
        "epoch: fixed at publish in 'ordered' mode, the epoch the kernel's race produced "
        "in 'atomic' mode",
        "timestamp_ns: the publish sequence number unless a clock is given; stored as 0 (volatile)",
        "a faulted slot carries failure evidence (slot_status FAULT, its class, backend "
        "code and the digest of its 64 output bytes); a completed slot has none",
    ),
)


class CaptureFormat(VrrlFormat):
    """A megakernel capture (``.mkvrrl``): read, checked and rendered as the VRRL log it is."""

    name: ClassVar[str] = "capture"
    label: ClassVar[str] = "megakernel capture (VRRL ring log)"
    extensions: ClassVar[tuple[str, ...]] = (CAPTURE_EXTENSION,)
    framing: ClassVar[Framing | None] = CAPTURE_FRAMING
    kind: ClassVar[str | None] = CAPTURE_KIND


#: The one capture format object.
CAPTURE: Final = CaptureFormat()
