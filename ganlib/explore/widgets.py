"""The latent explorer: ipywidgets wired to `ganlib.explore.latent.render_png`, and nothing else.

All the work (latents, directions, truncation, drawing) lives in `ganlib.explore.latent`, which is
tested without a browser; this module only lays out a seed box, one slider per principal
direction and a truncation slider (and, for position-conditioned generators, a slice-position slider and a mask
overlay toggle), and re-renders the image when any of them moves.

`InterpolationExplorer` does the same for a walk between two seeds.

The image carries the CSS class `ganlib-latent-image` and the direction sliders
`ganlib-direction-slider` (plus `ganlib-direction-<i>`), so a browser test can find them.
"""

from __future__ import annotations

import ipywidgets as widgets
import torch

from .latent import png_bytes, render_interpolation, render_png

IMAGE_CLASS = "ganlib-latent-image"
SLIDER_CLASS = "ganlib-direction-slider"


def row(controls: widgets.Widget, image: widgets.Image) -> widgets.HBox:
    """Controls left, image right, top-aligned so the image keeps its size beside a taller column."""
    return widgets.HBox([controls, image], layout=widgets.Layout(align_items="flex-start"))


def seed_box(value: int, description: str) -> widgets.BoundedIntText:
    """A seed entry that re-renders as it is typed (continuous_update), not only on Enter."""
    return widgets.BoundedIntText(value=value, min=0, max=2**31 - 1, description=description, continuous_update=True)


def square_image(size: int) -> widgets.Image:
    return widgets.Image(
        format="png", width=size, height=size, layout=widgets.Layout(width=f"{size}px", height=f"{size}px")
    )


class LatentExplorer(widgets.VBox):
    """Seed box, direction sliders and truncation slider beside a live `ipywidgets.Image` of G's output."""

    def __init__(
        self,
        G: torch.nn.Module,
        directions: torch.Tensor,
        strengths: torch.Tensor | None = None,
        seed: int = 0,
        size: int = 256,
        max_amount: float = 3.0,
        step: float = 0.25,
    ):
        self.G, self.directions, self.size = G, directions, size
        self._quiet = False
        self.seed = seed_box(seed, "seed")
        # psi below ~0.25 leaves the latent norms G was trained on (|z| ~ 10), see notebook 04.
        self.psi = widgets.FloatSlider(
            value=1.0, min=0.25, max=1.5, step=0.05, description="truncation ψ", readout_format=".2f"
        )
        self.sliders = []
        for i in range(len(directions)):
            tip = f" (≈{float(strengths[i]):.3f} per step)" if strengths is not None else ""
            slider = widgets.FloatSlider(
                value=0.0,
                min=-max_amount,
                max=max_amount,
                step=step,
                description=f"direction {i + 1}",
                tooltip=f"principal direction {i + 1}{tip}",
                readout_format="+.2f",
            )
            slider.add_class(SLIDER_CLASS)
            slider.add_class(f"ganlib-direction-{i}")
            self.sliders.append(slider)
        # A position-conditioned G gets a slice-position slider, a paired G a mask overlay toggle.
        net = getattr(G, "module", G)
        condition = getattr(net, "condition", None)
        self.position = (
            widgets.IntSlider(value=condition.positions // 2, min=0, max=condition.positions - 1,
                              description="slice position")
            if condition is not None else None
        )
        paired = getattr(net, "mask_classes", 0)
        self.overlay = widgets.Checkbox(value=False, description="show mask") if paired else None
        extra = [w for w in (self.position, self.overlay) if w is not None]
        for w, name in ((self.position, "ganlib-position-slider"), (self.overlay, "ganlib-mask-toggle")):
            if w is not None:
                w.add_class(name)
        self.reset = widgets.Button(description="reset sliders")
        self.image = square_image(size)
        self.image.add_class(IMAGE_CLASS)

        for control in (self.seed, self.psi, *extra, *self.sliders):
            control.observe(self.update, names="value")
        self.reset.on_click(self._reset)
        controls = widgets.VBox([self.seed, self.psi, *extra, *self.sliders, self.reset])
        super().__init__([row(controls, self.image)])
        self.update()

    @property
    def amounts(self) -> list[float]:
        return [s.value for s in self.sliders]

    def update(self, change=None) -> None:
        if self._quiet:
            return
        self.image.value = render_png(
            self.G, self.seed.value, self.amounts, self.psi.value, self.directions, self.size,
            position=self.position.value if self.position is not None else None,
            overlay=bool(self.overlay is not None and self.overlay.value),
        )

    def _reset(self, _button=None) -> None:
        self._quiet = True  # one render for the whole reset, not one per slider
        try:
            for s in self.sliders:
                s.value = 0.0
            self.psi.value = 1.0
        finally:
            self._quiet = False
        self.update()

    def __repr__(self) -> str:  # the text a static copy of the notebook shows in place of the widget
        return (
            f"LatentExplorer(seed={self.seed.value}, {len(self.sliders)} direction sliders, "
            f"truncation={self.psi.value:.2f}): run the notebook to use the sliders"
        )


class InterpolationExplorer(widgets.VBox):
    """Two seed boxes, a lerp/slerp toggle and a t slider beside a live image of the walk between them."""

    def __init__(self, G: torch.nn.Module, seed0: int = 1, seed1: int = 2, size: int = 256):
        self.G, self.size = G, size
        self.seed0 = seed_box(seed0, "from seed")
        self.seed1 = seed_box(seed1, "to seed")
        self.method = widgets.ToggleButtons(options=["slerp", "lerp"], value="slerp", description="path")
        self.t = widgets.FloatSlider(value=0.0, min=0.0, max=1.0, step=0.05, description="t")
        self.image = square_image(size)
        self.image.add_class(IMAGE_CLASS + "-interpolation")
        for control in (self.seed0, self.seed1, self.method, self.t):
            control.observe(self.update, names="value")
        controls = widgets.VBox([self.seed0, self.seed1, self.method, self.t])
        super().__init__([row(controls, self.image)])
        self.update()

    def update(self, change=None) -> None:
        image = render_interpolation(
            self.G, self.seed0.value, self.seed1.value, self.t.value, self.method.value, self.size
        )
        self.image.value = png_bytes(image)

    def __repr__(self) -> str:
        return (
            f"InterpolationExplorer(seed {self.seed0.value} -> {self.seed1.value}, {self.method.value}, "
            f"t={self.t.value:.2f}): run the notebook to use the sliders"
        )
