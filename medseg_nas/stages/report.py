"""`medseg-nas report RUN_DIR`: one self-contained report.html (PNG figures embedded as base64).

Sections (each drawn from the artefacts of its stage; a missing stage is said, not faked):
  1. search: Pareto front of f1 vs parameters with the chosen network and the published
     EMONAS-Net sizes; validation / test Dice vs parameters with the published EMONAS results
  2. the front against each deployment cost (parameters, MACs, measured CPU latency); the
     hypervolume after every trial
  3. training curves of the retrained network (loss, train / val Dice per epoch)
  4. test metrics: per-class Dice / HD95 / ASD table (best/summary.json)
  5. slices of the best and worst test cases: image, ground truth and prediction overlaid
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import math
from pathlib import Path

import numpy as np

from medseg_nas.errors import MedsegError
from medseg_nas.results import TrialStatus
from medseg_nas.rundir import RunDir
from medseg_nas.space.published import PUBLISHED_DICE, PUBLISHED_PARAMS


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "<img src='data:image/png;base64," + base64.b64encode(buf.getvalue()).decode() + "'/>"


def _load_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _published(front_doc) -> tuple[str | None, dict]:
    pub = (front_doc or {}).get("published") if front_doc else None
    if pub:
        return pub.get("dataset"), pub
    return None, {}


def fig_front(rows, chosen_id, front_doc, summary) -> str:
    import matplotlib.pyplot as plt

    from medseg_nas.search.archive import pareto_front

    done = [r for r in rows if r.status == TrialStatus.DONE and r.objectives]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    params = [r.cost("params") for r in done]
    f1 = [r.f1 for r in done]
    a.scatter(params, f1, s=18, c="0.6", label="trials")
    front = sorted(pareto_front([(r.f1, math.log(p)) for r, p in zip(done, params)]).tolist(), key=lambda i: params[i])
    a.step([params[i] for i in front], [f1[i] for i in front], where="post", c="C0", lw=1.5)
    a.scatter([params[i] for i in front], [f1[i] for i in front], s=30, c="C0", label="Pareto front")
    for r, p in zip(done, params):
        if r.id == chosen_id:
            a.scatter([p], [r.f1], s=160, marker="*", c="C3", zorder=5, label=f"chosen (trial {r.id})")
    top = a.get_ylim()[1]
    for k, (name, n) in enumerate(sorted(PUBLISHED_PARAMS.items(), key=lambda kv: kv[1])):
        a.axvline(n, ls="--", c="C2", alpha=0.5, label="published EMONAS-Net sizes" if k == 0 else None)
        a.annotate(name, (n, top), xytext=(-3, -4 - 11 * k), textcoords="offset points", ha="right", va="top",
                   fontsize=7, color="C2")
    a.set_xscale("log")
    a.set_xlabel("trainable parameters")
    a.set_ylabel("f1 (expected segmentation error)")
    a.set_title("search: objectives")
    a.legend(fontsize=8)
    vd = [(p, (r.result or {}).get("val_dice")) for r, p in zip(done, params)]
    vd = [(p, v) for p, v in vd if v is not None]
    if vd:
        b.scatter(*zip(*vd), s=18, c="0.6", label="trials (val Dice, search budget)")
    if summary and chosen_id is not None:
        ch = [p for r, p in zip(done, params) if r.id == chosen_id]
        if ch:
            b.scatter(ch, [summary["mean_dice"]], s=160, marker="*", c="C3", zorder=5, label="chosen, retrained (test Dice)")
    for name, dice in PUBLISHED_DICE.items():
        b.scatter([PUBLISHED_PARAMS[name]], [float(np.mean(list(dice.values())))], marker="D", c="C2")
    for k, (name, dice) in enumerate(sorted(PUBLISHED_DICE.items(), key=lambda kv: PUBLISHED_PARAMS[kv[0]])):
        b.annotate(f"EMONAS {name}", (PUBLISHED_PARAMS[name], float(np.mean(list(dice.values())))), fontsize=7,
                   xytext=(-4, -12 - 10 * k), textcoords="offset points", ha="right", color="C2")
    b.set_xscale("log")
    b.set_ylim(0, 1)
    b.set_xlabel("trainable parameters")
    b.set_ylabel("mean foreground Dice")
    b.set_title("Dice vs size (published: their datasets, for scale)")
    b.legend(fontsize=8)
    return _png(fig)


def fig_costs(rows, chosen_id, searched: str) -> str | None:
    """The front against each deployment cost: f1 vs parameters, MACs and measured latency, each
    panel with the Pareto front in that cost and the chosen network; `searched` is the cost f2 was."""
    import matplotlib.pyplot as plt

    from medseg_nas.search.archive import pareto_front

    done = [r for r in rows if r.status == TrialStatus.DONE and r.objectives]
    if not done:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    from medseg_nas.nas.front import COST_AXIS  # the axis names front.png uses

    for ax, (kind, label) in zip(axes, COST_AXIS.items()):
        pts = [(r.cost(kind), r.f1, r.id) for r in done if r.cost(kind)]
        ax.set_xlabel(label)
        ax.set_title(f"f1 vs {kind}" + (" (the searched f2)" if kind == searched else ""))
        if not pts:
            ax.text(0.5, 0.5, "not recorded by these trials", ha="center", va="center", transform=ax.transAxes)
            continue
        x, y = [p[0] for p in pts], [p[1] for p in pts]
        ax.scatter(x, y, s=18, c="0.6", label="trials")
        front = sorted(pareto_front([(b, math.log(a)) for a, b, _ in pts]).tolist(), key=lambda i: x[i])
        ax.step([x[i] for i in front], [y[i] for i in front], where="post", c="C0", lw=1.5)
        ax.scatter([x[i] for i in front], [y[i] for i in front], s=30, c="C0", label=f"Pareto front in {kind}")
        ax.scatter([a for a, _, i in pts if i == chosen_id], [b for _, b, i in pts if i == chosen_id], s=160, marker="*",
                   c="C3", zorder=5, label="chosen")
        ax.set_xscale("log")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("f1 (expected segmentation error)")
    return _png(fig)


def fig_hypervolume(rows, front_doc) -> str | None:
    import matplotlib.pyplot as plt

    box = (front_doc or {}).get("hypervolume_box")
    done = [r.objectives for r in rows if r.objectives]
    if not done:
        return None
    if box:
        box = (tuple(box["ideal"]), tuple(box["reference"]))
    else:  # no front.json: a box around the observed points
        F = np.asarray(done)
        lo, hi = F.min(0), F.max(0)
        box = (tuple(lo - 0.05 * (hi - lo + 1e-9)), tuple(hi + 0.1 * (hi - lo + 1e-9)))
    from medseg_nas.nas.front import hypervolume_history

    hv = hypervolume_history(rows, box)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([k for k, _ in hv], [v for _, v in hv], marker="o", ms=3)
    ax.set_xlabel("finished trials")
    ax.set_ylabel("normalised hypervolume")
    ax.set_title("hypervolume of the front")
    return _png(fig)


def fig_training(history: dict, labels: dict | None = None) -> str | None:
    import matplotlib.pyplot as plt

    epochs = history.get("history") or []
    if not epochs:
        return None
    x = list(range(1, len(epochs) + 1))
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.5))
    loss = [e.get("loss") for e in epochs]
    a.plot(x, loss, marker="o", ms=3)
    a.set_xlabel("epoch")
    a.set_ylabel("training loss")
    for key, lab in (("train_dice", "train Dice"), ("val_dice", "val Dice")):
        ys = [e.get(key) for e in epochs]
        if any(y is not None for y in ys):
            b.plot(x, [np.nan if y is None else y for y in ys], marker="o", ms=3, label=lab)
    per = [e.get("val_dice_per_class") for e in epochs]
    if per and isinstance(per[-1], (list, dict)):
        items = per[-1].items() if isinstance(per[-1], dict) else enumerate(per[-1], 1)
        for k, _ in items:
            ys = [(p.get(k) if isinstance(p, dict) else (p[k - 1] if p and len(p) >= k else None)) if p else None for p in per]
            name = (labels or {}).get(str(k), k)
            b.plot(x, [np.nan if y is None else y for y in ys], ls=":", lw=1, label=f"val {name}")
    if history.get("e_max"):
        b.axvline(history["e_max"], c="0.5", ls="--", lw=1, label="e_max")
    b.set_ylim(0, 1)
    b.set_xlabel("epoch")
    b.set_ylabel("Dice")
    b.legend(fontsize=7)
    fig.suptitle("retraining of the chosen network")
    return _png(fig)


def fig_case(case: dict, title: str, n_slices: int = 3, labels: dict | None = None) -> str | None:
    import matplotlib.pyplot as plt
    import nibabel as nib
    from matplotlib.colors import ListedColormap

    pred_path = case.get("prediction")
    if not pred_path or not Path(pred_path).is_file() or not Path(case["label"]).is_file():
        return None
    img = np.asarray(nib.load(case["image"]).dataobj, dtype=np.float32)
    if img.ndim == 4:
        img = img[..., 0]
    gt = np.rint(np.asarray(nib.load(case["label"]).dataobj)).astype(int).reshape(img.shape)
    pr = np.asarray(nib.load(pred_path).dataobj).astype(int).reshape(img.shape)
    fg = (gt > 0).sum(axis=(0, 1))
    has = np.flatnonzero(fg)  # slices with foreground: show them at their 25/50/75 % positions
    if len(has):
        zs = sorted({int(has[int(round(q * (len(has) - 1)))]) for q in np.linspace(0.25, 0.75, n_slices)})
    else:
        zs = [img.shape[2] // 2]
    n_cls = max(int(gt.max()), int(pr.max()), 1)
    cmap = ListedColormap(plt.get_cmap("tab10").colors[:n_cls])
    fig, axes = plt.subplots(2, len(zs), figsize=(3.2 * len(zs), 6.4), squeeze=False)
    lo, hi = np.percentile(img, [1, 99])
    for j, z in enumerate(zs):
        for i, (lab, name) in enumerate(((gt, "ground truth"), (pr, "prediction"))):
            ax = axes[i, j]
            ax.imshow(np.rot90(img[:, :, z]), cmap="gray", vmin=lo, vmax=hi)
            m = np.ma.masked_equal(np.rot90(lab[:, :, z]), 0)
            ax.imshow(m - 1, cmap=cmap, vmin=0, vmax=max(n_cls - 1, 1), alpha=0.45, interpolation="nearest")
            ax.set_title(f"{name}, slice {z}", fontsize=8)
            ax.axis("off")
    from matplotlib.patches import Patch

    names = labels or {}
    fig.legend(handles=[Patch(color=cmap(k - 1), alpha=0.6, label=str(names.get(str(k), k))) for k in range(1, n_cls + 1)],
               loc="lower center", ncol=min(n_cls, 6), fontsize=8)
    fig.suptitle(title)
    return _png(fig)


def cost_line(costs: dict, n_params: int) -> str:
    """What the chosen network costs to deploy, as far as the run measured it."""
    parts = [f"{n_params:,} parameters"]
    if costs.get("macs"):
        parts.append(f"{costs['macs'] / 1e9:.2f} GMACs per patch")
    if costs.get("latency_ms"):
        parts.append(f"{costs['latency_ms']:.0f} ms per median volume (search, CPU)")
    if costs.get("predict_ms_per_volume"):
        parts.append(f"{costs['predict_ms_per_volume']:.0f} ms per test file ({costs.get('predict_device', '?')}, "
                     f"{costs.get('predict_threads', '?')} threads, with I/O)")
    return "cost: " + ", ".join(parts)


def _fmt(x, nd=3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{nd}f}"


def metrics_table(summary: dict) -> str:
    head = ("<tr><th>class</th><th>Dice mean ± std</th><th>HD95 mm mean ± std</th><th>ASD mm mean ± std</th>"
            "<th>missed / spurious</th></tr>")
    body = []
    for name, c in summary["classes"].items():
        body.append(
            f"<tr><td>{html.escape(name)}</td><td>{_fmt(c['dice']['mean'])} ± {_fmt(c['dice']['std'])}</td>"
            f"<td>{_fmt(c['hd95']['mean'], 2)} ± {_fmt(c['hd95']['std'], 2)}</td>"
            f"<td>{_fmt(c['asd']['mean'], 2)} ± {_fmt(c['asd']['std'], 2)}</td>"
            f"<td>{c.get('empty_prediction', 0)} / {c.get('empty_ground_truth', 0)}</td></tr>"
        )
    body.append(f"<tr><th>mean foreground</th><th>{_fmt(summary['mean_dice'])}</th><td colspan=3>{summary['n_cases']} test cases"
                f"{' (mirror TTA)' if summary.get('tta') else ''}</td></tr>")
    pp, raw = summary.get("postprocess") or {}, summary.get("raw")
    if pp:
        kept = [n for n, d in (pp.get("per_class") or {}).items() if d.get("applied")]
        what = (f"largest connected component kept for {', '.join(kept) or 'no class'}" if pp.get("mode") == "auto"
                else f"predict.postprocess: {pp.get('mode')}")
        body.append(f"<tr><td>post-processing</td><td colspan=4>{html.escape(what)} — {html.escape(pp.get('rule', ''))}"
                    f" ({len(pp.get('decided_on') or [])} monitor cases)</td></tr>")
    if raw:  # the network's output before the applied post-processing
        body.append(f"<tr><td>raw network output</td><td>{_fmt(raw['mean_dice'])}</td>"
                    f"<td>{_fmt(raw['mean_hd95'], 2)}</td><td colspan=2>before post-processing</td></tr>")
    lcc = summary.get("largest_component")
    if lcc:  # every class reduced, whatever was decided
        body.append(f"<tr><td>largest component per class</td><td>{_fmt(lcc['mean_dice'])}</td>"
                    f"<td>{_fmt(lcc['mean_hd95'], 2)}</td><td colspan=2>every class kept to its largest connected "
                    "component (nnU-Net's post-processing), measured on the same predictions</td></tr>")
    note = html.escape(summary.get("conventions", ""))
    return f"<table>{head}{''.join(body)}</table><p class='note'>{note}</p>"


CSS = """body{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:left}
h2{border-bottom:1px solid #ddd;padding-bottom:4px}.note{color:#666}img{max-width:100%}code{background:#f4f4f4;padding:1px 4px}"""


def build_report(run_dir: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    run = RunDir(run_dir)
    if not run.config_yaml.is_file() and not run.trials_db.is_file():
        raise MedsegError(f"{run.path} is not a run directory (no config.yaml / trials.sqlite)")
    rows = run.trial_rows()
    front_doc = _load_json(run.front_json)
    retrain_info = _load_json(run.retrain_json) or {}
    history = _load_json(run.history_json) or {}
    summary = _load_json(run.summary_json)
    export = _load_json(run.export_json) or {}
    chosen = retrain_info.get("trial_id")
    name = (front_doc or {}).get("name") or run.path.name
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>medseg-nas report: {html.escape(name)}</title>"
             f"<style>{CSS}</style></head><body><h1>medseg-nas report: {html.escape(name)}</h1>"]
    n_done = sum(r.status == TrialStatus.DONE for r in rows)
    n_failed = sum(r.status == TrialStatus.FAILED for r in rows)
    parts.append(f"<p>{len(rows)} trials ({n_done} done, {n_failed} failed)"
                 + (f", strategy {html.escape(str(front_doc.get('strategy')))}, hypervolume {_fmt(front_doc.get('hypervolume'), 4)}"
                    if front_doc else "") + f". Run directory <code>{html.escape(str(run.path))}</code>.</p>")
    if retrain_info:
        g = retrain_info.get("genome") or {}
        from medseg_nas.space import Genome

        desc = Genome.from_dict(g).describe() if g else "?"
        n_params = retrain_info.get("n_params")
        parts.append(f"<p><b>Chosen network</b>: trial {chosen} ({html.escape(str(retrain_info.get('reason')))}): "
                     f"<code>{html.escape(desc)}</code>; {html.escape(cost_line((summary or {}).get('costs') or {}, n_params))}.</p>"
                     if n_params else
                     f"<p><b>Chosen network</b>: trial {chosen}: <code>{html.escape(desc)}</code></p>")
    parts.append("<h2>Search</h2>")
    if rows:
        parts.append(fig_front(rows, chosen, front_doc, summary))
        costs = fig_costs(rows, chosen, (front_doc or {}).get("cost", "params"))
        if costs:
            parts.append(costs)
        hv = fig_hypervolume(rows, front_doc)
        if hv:
            parts.append(hv)
        if front_doc and front_doc.get("front"):
            fid = front_doc.get("fidelity")
            if fid:
                parts.append(f"<p class='note'>Successive halving (eta {fid['eta']}): rungs at {fid['rungs']} epochs, "
                             f"reached by {fid['trials_per_rung']} trials; f1 is each trial's at the highest rung it reached "
                             "(a lower rung's f1 is of a less trained network).</p>")
            parts.append("<table><tr><th>trial</th><th>genome</th><th>parameters</th><th>GMACs / patch</th>"
                         "<th>CPU ms / volume</th><th>f1</th><th>val Dice</th>" + ("<th>epochs</th>" if fid else "") + "</tr>")
            from medseg_nas.space import Genome

            for e in front_doc["front"]:
                mark = " ★" if e.get("id") == chosen else ""
                parts.append(f"<tr><td>{e.get('id')}{mark}</td><td><code>{html.escape(Genome.from_dict(e['genome']).describe())}</code></td>"
                             f"<td>{e.get('n_params') or int(round(math.exp(e['f2']))):,}</td>"
                             f"<td>{_fmt(e['macs'] / 1e9 if e.get('macs') else None, 2)}</td><td>{_fmt(e.get('latency_ms'), 0)}</td>"
                             f"<td>{_fmt(e.get('f1'), 4)}</td>"
                             f"<td>{_fmt(e.get('val_dice'))}</td>" + (f"<td>{e.get('epochs')}</td>" if fid else "") + "</tr>")
            parts.append("</table>")
        parts.append("<p class='note'>Published EMONAS-Net points are the paper's networks on their own datasets "
                     "(prostate, hippocampus, cardiac), shown for scale only.</p>")
    else:
        parts.append("<p class='note'>no trials yet.</p>")
    parts.append("<h2>Retraining</h2>")
    plan = _load_json(run.plan_json) or {}
    tr = fig_training(history, {str(k): v for k, v in (plan.get("labels") or {}).items()}) if history else None
    parts.append(tr or "<p class='note'>not retrained yet (best/history.json missing).</p>")
    if retrain_info:
        parts.append(f"<p>{retrain_info.get('epochs_run')} of {retrain_info.get('epochs_budget')} epochs × "
                     f"{retrain_info.get('iters_per_epoch')} iterations, best epoch {retrain_info.get('e_max')}, "
                     f"{_fmt(retrain_info.get('seconds'), 0)} s, trained on "
                     f"{'train + validation' if retrain_info.get('include_val') else 'train'} cases; "
                     + (f"the validation curve and best epoch are measured on {len(retrain_info.get('monitor_cases') or [])} "
                        "held-out case(s) the retrain never trained on.</p>" if retrain_info.get("monitor_held_out")
                        else "<b>the validation curve is measured on cases the retrain also trained on</b> "
                             "(optimistic; see the test set below).</p>"))
    parts.append("<h2>Test set</h2>")
    if summary:
        parts.append(metrics_table(summary))
        by_id = {c["id"]: c for c in summary.get("cases", [])}
        for which in ("best_case", "worst_case"):
            c = by_id.get(summary.get(which))
            if c:
                fig = fig_case(c, f"{which.replace('_', ' ')}: {c['id']} (mean Dice {c['mean_dice']:.3f})",
                               labels={str(k): v for k, v in (plan.get("labels") or {}).items()})
                if fig:
                    parts.append(fig)
    else:
        parts.append("<p class='note'>not evaluated yet (best/summary.json missing).</p>")
    parts.append("<h2>Exports</h2>")
    if export:
        items = []
        for fmt in ("torchscript", "onnx"):
            if fmt in export:
                items.append(f"<li>{fmt}: <code>{html.escape(Path(export[fmt]['path']).name)}</code>, max |Δlogit| vs PyTorch "
                             f"{export[fmt]['max_abs_diff']:.1e}</li>")
        if "bundle" in export:
            items.append("<li>MONAI bundle: <code>best/bundle/</code> (<code>python -m monai.bundle run --config_file "
                         "best/bundle/configs/inference.json --bundle_root best/bundle --dataset_dir IN --output_dir OUT</code>)</li>")
        parts.append("<ul>" + "".join(items) + "</ul>")
    else:
        parts.append("<p class='note'>not exported yet.</p>")
    parts.append("</body></html>")
    tmp = run.report_html.with_name(run.report_html.name + ".tmp")
    tmp.write_text("\n".join(parts))
    tmp.replace(run.report_html)
    return run.report_html


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="run directory")


def main(args: argparse.Namespace) -> int:
    out = build_report(args.run_dir)
    print(f"report → {out}")
    return 0
