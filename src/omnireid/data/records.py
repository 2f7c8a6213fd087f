"""Named records that travel from dataset readers to loaders and evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field

UNKNOWN_CAMERA = -1


@dataclass(frozen=True)
class Sample:
    """One image: where it is and who/where it shows.

    ``pid`` is the identity label (relabelled to 0..N-1 for training splits), ``camid`` the camera
    index (``UNKNOWN_CAMERA`` when the data has no camera information) and ``dsetid`` the index of
    the source dataset in a multi-source combination.
    """

    path: str
    pid: int
    camid: int
    dsetid: int = 0


@dataclass
class ReIDDataset:
    """The three splits of a re-ID dataset, as lists of :class:`Sample`."""

    name: str
    train: list[Sample]
    query: list[Sample]
    gallery: list[Sample]
    has_cameras: bool = True
    extra: dict = field(default_factory=dict)

    @property
    def num_train_pids(self) -> int:
        return len({s.pid for s in self.train})

    @property
    def num_train_cams(self) -> int:
        return len({s.camid for s in self.train})
