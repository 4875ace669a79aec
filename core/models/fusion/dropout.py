"""Dropout masks drawn ahead on a second thread while training runs on the first.

On a small catalog each optimiser step passes the whole catalog through the heads, and drawing their dropout
masks (a random number per input value) was a fifth of the training time, on one thread. `DrawnAhead` draws the
masks of the coming steps on another core, in the order the steps use them, from torch's default generator, with
the very operations torch's own CPU dropout runs (`empty_like(x).bernoulli_(1 - p)`, `div_(1 - p)`, then
`x * noise`): the weights come out the same, bit for bit, as with `nn.Dropout`.

It draws only masks the training has said it will use (`allow`, at the start of each epoch, for that epoch's
steps), so when training ends the generator stands exactly where `nn.Dropout` would have left it, and nothing is
ever set back. (Only a training that fails part-way through an epoch sets the generator back to the first mask
it did not use.) The training loop turns it on only where every step draws the same shapes in the same order:
the whole-catalog step of one process.
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch import nn

STEPS_AHEAD = 2  # masks of at most this many steps are drawn before the step that uses them


class DrawnAhead:
    """Dropout noise (mask / (1 - p)) for a repeating sequence of shapes, drawn on a background thread."""

    def __init__(self, shapes: list[tuple[int, ...]], p: float, steps_ahead: int = STEPS_AHEAD) -> None:
        if not shapes or not 0 < p < 1:
            raise ValueError(f"drawing ahead needs shapes and 0 < p < 1 (got {len(shapes)} shapes, p={p})")
        self.shapes, self.p = [tuple(s) for s in shapes], p
        self._limit = len(self.shapes) * max(1, steps_ahead)  # masks drawn and not yet used, at most
        self._ready: queue.Queue = queue.Queue()  # (generator state before the draw, noise)
        self._changed = threading.Condition()
        self._allowed = 0  # masks the training will use that are not drawn yet
        self._waiting = 0  # masks drawn and not used yet
        self._stop = False
        self._error: BaseException | None = None
        self._threads = torch.get_num_threads()  # the drawing thread uses the caller's torch thread count
        self._thread = threading.Thread(target=self._draw, name="prism-dropout-ahead", daemon=True)
        self._thread.start()

    def allow(self, steps: int) -> None:
        """The training will take `steps` more steps: their masks may be drawn."""
        with self._changed:
            self._allowed += steps * len(self.shapes)
            self._changed.notify_all()

    def _draw(self) -> None:
        try:
            torch.set_num_threads(self._threads)
            k = 0
            while True:
                with self._changed:
                    self._changed.wait_for(lambda: self._stop or (self._allowed > 0 and self._waiting < self._limit))
                    if self._stop:
                        return
                    self._allowed -= 1
                    self._waiting += 1
                state = torch.get_rng_state()
                noise = torch.empty(self.shapes[k]).bernoulli_(1 - self.p)
                noise.div_(1 - self.p)
                self._ready.put((state, noise))
                k = (k + 1) % len(self.shapes)
        except BaseException as e:  # noqa: BLE001 - raised again on the training thread by next()
            self._error = e
            self._ready.put((None, None))

    def next(self, shape: torch.Size) -> torch.Tensor:
        """The noise of the next dropout call, which must have `shape` (and have been allowed)."""
        if self._ready.empty() and self._allowed == 0 and self._waiting == 0:
            raise RuntimeError("a dropout call came that the training did not allow for (DrawnAhead.allow)")
        _, noise = self._ready.get()
        if noise is None:
            raise RuntimeError("drawing dropout masks ahead failed") from self._error
        with self._changed:
            self._waiting -= 1
            self._changed.notify_all()
        if tuple(noise.shape) != tuple(shape):
            raise RuntimeError(f"a dropout call of shape {tuple(shape)} met a mask drawn for {tuple(noise.shape)}: "
                               "the steps do not draw the shapes DrawnAhead was given")
        return noise

    def close(self) -> None:
        """Stop drawing. Masks drawn and never used (a training that failed part-way) give their draws back to the
        default generator."""
        with self._changed:
            self._stop = True
            self._changed.notify_all()
        self._thread.join()
        try:
            state, _ = self._ready.get_nowait()  # the first mask drawn and never used
        except queue.Empty:
            return
        if state is not None:
            torch.set_rng_state(state)


DRAWN: ContextVar[DrawnAhead | None] = ContextVar("fusion_dropout_drawn_ahead", default=None)


@contextmanager
def drawn_ahead(shapes: list[tuple[int, ...]], p: float) -> Iterator[DrawnAhead]:
    """Within the block, HeadDropout calls in training mode take their masks from a DrawnAhead of `shapes`; the
    block says how many steps it will take with `allow`."""
    source = DrawnAhead(shapes, p)
    token = DRAWN.set(source)
    try:
        yield source
    finally:
        DRAWN.reset(token)
        source.close()


class HeadDropout(nn.Dropout):
    """nn.Dropout that takes its noise from the active DrawnAhead, when there is one and it is training."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        source = DRAWN.get()
        if source is None or not self.training or self.p == 0 or x.numel() == 0:
            return super().forward(x)
        return x * source.next(x.shape)
