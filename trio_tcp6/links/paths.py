"""A :class:`~trio_tcp6.links.virtual.VirtualNetwork`'s directions: the impairment
layers that decide what applies to each one, and the cache of per-direction state.

The network routes every packet through a :class:`Path` (one per direction src→dst,
found through the sending link's own cache): its resolved impairments, its
destination link and its fate state. Which knobs apply to a direction, and when a
cached direction may be forgotten, are questions of the control plane, asked when
the configuration changes or a new direction is first used, never per packet: they
are this module, apart from the network's data path.

Impairments are layered: the network-wide values (constructor, or ``impair()`` with
both ``src`` and ``dst`` None), then ``impair(dst=B)`` (all traffic *to* B), then
``impair(src=A)`` (all traffic *from* A), then ``impair(src=A, dst=B)`` (that one
direction). Each call sets only the named knobs in its layer; the most specific layer
that sets a knob wins. ``impair(src=A, dst=B, loss=1.0)`` cuts A→B only.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from .impair import Impairments, PathState

if TYPE_CHECKING:
    from .host import VirtualLink

__all__ = ["ImpairmentLayers", "LayerKey", "Path", "PathTable"]

#: A layer: (source, destination) as packed addresses, None for "any".
LayerKey = tuple[bytes | None, bytes | None]


class ImpairmentLayers:
    """The network-wide impairments (:attr:`base`) and the knobs each more specific
    layer overrides (see the module docstring)."""

    __slots__ = ("_layers", "base")

    def __init__(self, base: Impairments) -> None:
        #: The network-wide values.
        self.base = base
        # (src, dst) with None wildcards -> knob overrides of that layer
        self._layers: dict[LayerKey, dict[str, Any]] = {}

    def set(self, key: LayerKey, changes: dict[str, Any]) -> None:
        """Set the knobs ``changes`` names in layer ``key`` (ValueError for an
        invalid value: nothing is stored then)."""
        if key == (None, None):
            self.base = self.base.evolve(**changes)
        else:
            layer = self._layers.get(key, {})
            merged = {**layer, **changes}
            Impairments(**merged)  # validate before storing
            self._layers[key] = merged

    def clear(self, key: LayerKey) -> None:
        """Forget the overrides of layer ``key`` (both None: reset everything)."""
        if key == (None, None):
            self.base = Impairments()
            self._layers.clear()
        else:
            self._layers.pop(key, None)

    def overrides(self, key: LayerKey) -> dict[str, Any]:
        """The knobs layer ``key`` sets, as ``impair()`` took them (a copy; both
        None: every network-wide value)."""
        if key == (None, None):
            return attrs.asdict(self.base)
        return dict(self._layers.get(key, {}))

    def resolve(self, src: bytes, dst: bytes) -> Impairments:
        """The impairments that apply to the direction ``src``→``dst``."""
        if not self._layers:
            return self.base
        knobs: dict[str, Any] = {}
        for key in ((None, dst), (src, None), (src, dst)):
            layer = self._layers.get(key)
            if layer:
                knobs.update(layer)
        return self.base.evolve(**knobs) if knobs else self.base


class Path:
    """Cached state of one direction src→dst: its impairments (``imp``), its
    destination link (None while nobody has the address), its fate state
    (``state``) and ``fast``, whether a packet may go straight to the destination
    (trivial impairments and nothing of the path's still pending)."""

    __slots__ = ("dest", "fast", "imp", "state")

    def __init__(
        self, imp: Impairments, dest: VirtualLink | None, rng: random.Random | None
    ) -> None:
        self.imp = imp
        self.dest = dest
        self.state = PathState(rng)
        self.fast = imp.trivial


class PathTable:
    """Every cached :class:`Path`, by (source, destination) packed addresses."""

    __slots__ = ("_paths",)

    def __init__(self) -> None:
        self._paths: dict[tuple[bytes, bytes], Path] = {}

    def __len__(self) -> int:
        return len(self._paths)

    def __contains__(self, key: object) -> bool:
        return key in self._paths

    def get(self, src: bytes, dst: bytes) -> Path | None:
        return self._paths.get((src, dst))

    def add(self, src: bytes, dst: bytes, path: Path) -> None:
        self._paths[(src, dst)] = path

    def retarget(self, dst: bytes, dest: VirtualLink | None) -> None:
        """Point every path towards ``dst`` at ``dest`` (attached, or None: gone)."""
        for (_src, to), path in self._paths.items():
            if to == dst:
                path.dest = dest

    def refresh(self, resolve: Callable[[bytes, bytes], Impairments], now: float) -> None:
        """Resolve every path's impairments again (the layers changed); a path turns
        fast only once nothing of it is pending (``now``)."""
        for (src, dst), path in self._paths.items():
            path.imp = resolve(src, dst)
            path.fast = path.imp.trivial and path.state.last_at <= now

    def evict_idle(self, target: int, now: float) -> list[tuple[bytes, bytes, Path]]:
        """Forget idle paths, oldest first, down to ``target``; returns them. A path
        with a packet still in flight (``now``) is kept: its state keeps the
        direction FIFO."""
        paths = self._paths
        evicted = []
        for key, path in list(paths.items()):
            if len(paths) <= target:
                break
            if path.state.last_at > now:
                continue
            del paths[key]
            evicted.append((key[0], key[1], path))
        return evicted
